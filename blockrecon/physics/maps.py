"""Coil sensitivity estimation from non-Cartesian multi-coil k-space (ESPIRiT, JSENSE).

ESPIRiT needs a Cartesian calibration region. It is made by gridding: the samples with every
``|k_d| < c/2`` are density compensated (:func:`~blockrecon.physics.dcf.pipe_menon_dcf`) and
adjoint-NUFFT'ed onto a ``c^ndim`` image (same field of view, coarser voxels), whose centred
unitary FFT is the ``c^ndim`` Cartesian k-space centre. It is zero-padded to the image shape and
handed to SigPy's ``EspiritCalib``. JSENSE runs SigPy's ``JsenseRecon`` on the non-Cartesian
data directly. Both run in NumPy (CPU); results come back as torch tensors on kspace's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from blockrecon.backend import from_array, to_array
from blockrecon.physics.dcf import pipe_menon_dcf
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.validation import check_coord, check_image_shape, check_kspace

METHODS = ("espirit", "jsense")


def centred_fft(image: torch.Tensor, ndim: int) -> torch.Tensor:
    """Unitary FFT over the last ``ndim`` axes with the origin at index ``N//2`` on both sides."""
    axes = tuple(range(-ndim, 0))
    shifted = torch.fft.ifftshift(image, dim=axes)
    return torch.fft.fftshift(torch.fft.fftn(shifted, dim=axes, norm="ortho"), dim=axes)


def grid_calibration(
    kspace: torch.Tensor, coord: torch.Tensor, calib_width: int, progress: bool = False
) -> torch.Tensor:
    """Grid the k-space centre onto a Cartesian ``calib_width^ndim`` region.

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        coord: ``(..., ndim)`` in grid units.
        calib_width: side of the calibration region (grid units).

    Returns:
        complex64 ``(coils, *[calib_width] * ndim)``, k = 0 at index ``calib_width // 2``.
    """
    ndim = coord.shape[-1]
    flat_coord = coord.reshape(-1, ndim)
    inside = (flat_coord >= -calib_width / 2).all(-1) & (flat_coord < calib_width / 2).all(-1)
    if int(inside.sum()) < calib_width**ndim // 8:
        raise ValueError(
            f"only {int(inside.sum())} samples lie in the {calib_width}^{ndim} calibration "
            "region; use a larger calib_width or a trajectory that samples the k-space centre"
        )
    calib_coord = flat_coord[inside]
    calib_kspace = kspace.reshape(kspace.shape[0], -1)[:, inside]
    calib_shape = (calib_width,) * ndim
    dcf = pipe_menon_dcf(calib_coord, calib_shape, progress=progress)
    low_res = NUFFT(calib_shape, calib_coord).adjoint(dcf * calib_kspace)
    return centred_fft(low_res, ndim).to(torch.complex64)


def _zero_pad_centre(kspace: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Place ``(coils, *small)`` centred (k = 0 at ``n//2``) in a zero ``(coils, *shape)``."""
    out = kspace.new_zeros((kspace.shape[0], *shape))
    region = tuple(slice(n // 2 - c // 2, n // 2 - c // 2 + c)
                   for n, c in zip(shape, kspace.shape[1:], strict=True))
    out[(slice(None), *region)] = kspace
    return out


def estimate_maps(
    kspace: torch.Tensor,
    coord: torch.Tensor,
    image_shape: Sequence[int],
    method: str = "espirit",
    calib_width: int = 24,
    kernel_width: int = 6,
    thresh: float = 0.02,
    crop: float = 0.95,
    max_iter: int = 10,
    progress: bool = False,
) -> torch.Tensor:
    """Estimate coil sensitivity maps from non-Cartesian k-space.

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        coord: float ``(..., ndim)`` in grid units of ``image_shape``, ``[-N/2, N/2]``.
        image_shape: image grid ``(nz, ny, nx)`` (or 2D).
        method: ``"espirit"`` or ``"jsense"``.
        calib_width: side of the k-space calibration region (capped at the smallest image size).
        kernel_width: ESPIRiT kernel width (k-space samples).
        thresh: ESPIRiT singular-value threshold, relative to the largest.
        crop: ESPIRiT eigenvalue threshold; maps are zero where the eigenvalue is lower
            (outside the object).
        max_iter: JSENSE outer iterations.
        progress: show progress bars (only when stderr is a terminal).

    Returns:
        complex64 ``(coils, *image_shape)`` on kspace's device. ESPIRiT maps have
        ``sum_c |S_c|^2 = 1`` inside the object and 0 outside; JSENSE maps are smooth
        polynomial-like fits normalized to ``sum_c |S_c|^2 = 1``.
    """
    image_shape = check_image_shape(image_shape)
    check_coord(coord, image_shape)
    if kspace.ndim != coord.ndim:
        raise ValueError(
            f"kspace must have shape (coils, *coord.shape[:-1]) = (coils, "
            f"{', '.join(map(str, coord.shape[:-1]))}), got {tuple(kspace.shape)}"
        )
    check_kspace(kspace, (kspace.shape[0], *coord.shape[:-1]))
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(calib_width, bool) or not isinstance(calib_width, int) or calib_width < 4:
        raise ValueError(f"calib_width must be an integer >= 4, got {calib_width!r}")
    calib_width = min(calib_width, *image_shape)
    kspace = kspace.to(torch.complex64)
    if method == "espirit":
        return _espirit(kspace, coord, image_shape, calib_width, kernel_width, thresh, crop,
                        progress)
    return _jsense(kspace, coord, image_shape, calib_width, max_iter, progress)


def _espirit(kspace, coord, image_shape, calib_width, kernel_width, thresh, crop, progress):
    from sigpy.mri.app import EspiritCalib

    calibration = grid_calibration(kspace, coord, calib_width, progress)
    padded = _zero_pad_centre(calibration, image_shape).cpu()
    maps = EspiritCalib(to_array(padded), calib_width=calib_width, kernel_width=kernel_width,
                        thresh=thresh, crop=crop, show_pbar=progress).run()
    return from_array(np.ascontiguousarray(maps, dtype=np.complex64)).to(kspace.device)


def _jsense(kspace, coord, image_shape, calib_width, max_iter, progress):
    from sigpy.mri.app import JsenseRecon

    maps = JsenseRecon(to_array(kspace.cpu()), coord=to_array(coord.cpu().to(torch.float32)),
                       img_shape=image_shape, ksp_calib_width=calib_width,
                       mps_ker_width=min(16, calib_width), max_iter=max_iter,
                       show_pbar=progress).run()
    maps = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.complex64))
    rss = maps.abs().pow(2).sum(0, keepdim=True).sqrt()
    return (maps / rss.clamp_min(torch.finfo(torch.float32).tiny)).to(kspace.device)
