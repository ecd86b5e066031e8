"""Simulated multi-coil non-Cartesian acquisitions that avoid the "inverse crime".

The object and the coil maps are analytic (:mod:`~blockrecon.physics.phantom`,
:mod:`~blockrecon.physics.angio`, :mod:`~blockrecon.physics.coils`). K-space is computed with the
NUFFT on a grid ``oversample`` times finer than the reconstruction grid, at the same physical
k-space coordinates (grid units are cycles per field of view, so the coordinate values are
unchanged). With the unitary NUFFT
scaling ``1/sqrt(prod(N))`` and ``oversample**ndim`` times more voxels, fine-grid k-space is
``oversample**(ndim/2)`` times larger than coarse-grid k-space of the same object, so it is
multiplied by ``oversample**(-ndim/2)``. The reference image and maps returned are the same
analytic objects sampled on the reconstruction grid.

Noise: circular complex Gaussian with ``E|n|^2 = noise_std**2`` (real and imaginary parts each
``noise_std/sqrt(2)``). SNR is defined on the k-space data: ``snr_db = 20 log10(rms(y) /
noise_std)`` with ``rms(y)`` the root-mean-square magnitude of the noise-free multi-coil samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from blockrecon.physics.acquisition import Acquisition
from blockrecon.physics.angio import angio_phantom
from blockrecon.physics.coils import birdcage_maps
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.phantom import random_ellipsoids, shepp_logan_3d
from blockrecon.physics.trajectory import radial_coord, radial_spokes
from blockrecon.physics.validation import check_coord, check_image_shape

PHANTOMS = ("shepp_logan", "ellipsoids", "angio")


def _phantom(
    name: str, shape: tuple[int, ...], oversample: int, seed: int, edge_width: float
) -> torch.Tensor:
    if name == "shepp_logan":
        return shepp_logan_3d(shape, oversample=oversample, edge_width=edge_width)
    if name == "angio":
        return angio_phantom(shape, seed=seed, oversample=oversample, edge_width=edge_width)
    return random_ellipsoids(shape, seed=seed, oversample=oversample, edge_width=edge_width)


def add_noise(kspace: torch.Tensor, snr_db: float, generator: torch.Generator) -> float:
    """Add circular complex Gaussian noise in place at ``snr_db`` (see module docstring).

    Returns:
        the noise standard deviation used.
    """
    if not (isinstance(snr_db, (int, float)) and math.isfinite(snr_db)):
        raise ValueError(f"snr_db must be a finite number or None, got {snr_db!r}")
    rms = kspace.abs().pow(2).mean().sqrt().item()
    noise_std = rms / 10 ** (snr_db / 20)
    noise = torch.randn(kspace.shape, generator=generator, dtype=kspace.dtype)
    kspace += (noise_std * noise).to(kspace.device)  # complex randn: E|n|^2 = 1
    return noise_std


def simulate_acquisition(
    coord: torch.Tensor,
    image_shape: Sequence[int],
    n_coils: int = 8,
    phantom: str = "shepp_logan",
    snr_db: float | None = None,
    oversample: int = 2,
    seed: int = 0,
    edge_width: float = 0.5,
    backend: str = "auto",
) -> Acquisition:
    """Simulate multi-coil k-space of an analytic phantom from a finer grid.

    Args:
        coord: float32 ``(..., 3)`` in grid units of ``image_shape``, ``[-N/2, N/2]``.
        image_shape: reconstruction grid ``(nz, ny, nx)``.
        n_coils: number of birdcage coils.
        phantom: ``"shepp_logan"``, ``"ellipsoids"`` (random ellipsoids drawn with ``seed``) or
            ``"angio"`` (the pulmonary angiography phantom of
            :func:`~blockrecon.physics.angio.angio_phantom` drawn with ``seed``).
        snr_db: k-space SNR in dB; ``None`` gives noise-free data.
        oversample: refinement of the simulation grid (1 commits the inverse crime).
        seed: seeds the noise and the random phantom.
        edge_width: phantom edge width in voxels of ``image_shape``. With the default 0.5 the
            object is nearly band-limited and fine- and coarse-grid k-space differ by about
            0.1-0.2%; 0 (sharp edges) gives a few percent.
        backend: NUFFT backend.

    Returns:
        :class:`~blockrecon.physics.acquisition.Acquisition` with the true ``maps`` (complex64
        ``(coils, *image_shape)``, ``sum_c |S_c|^2 = 1``) and the reference ``image`` on the
        reconstruction grid, ``noise_std`` (0 for noise-free data) and ``snr_db``; voxel size
        1 mm.
    """
    image_shape = check_image_shape(image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be 3D (nz, ny, nx), got {image_shape}")
    check_coord(coord, image_shape)
    if phantom not in PHANTOMS:
        raise ValueError(f"phantom must be one of {PHANTOMS}, got {phantom!r}")
    fine_object = _phantom(phantom, image_shape, oversample, seed, edge_width)
    fine_shape = tuple(fine_object.shape)
    fine_maps = birdcage_maps(n_coils, image_shape, oversample=oversample)
    nufft = NUFFT(coord.to(torch.float32), fine_shape, backend=backend)
    with torch.no_grad():
        kspace = nufft(fine_maps.to(coord.device) * fine_object.to(coord.device))
    kspace *= oversample ** (-len(image_shape) / 2)
    noise_std = 0.0
    if snr_db is not None:
        noise_std = add_noise(kspace, snr_db, torch.Generator().manual_seed(seed))
    return Acquisition(
        kspace=kspace,
        coord=coord,
        maps=birdcage_maps(n_coils, image_shape).to(coord.device),
        image=_phantom(phantom, image_shape, 1, seed, edge_width).to(coord.device),
        image_shape=image_shape,
        noise_std=noise_std,
        snr_db=snr_db,
    )


def simulate_radial(
    image_shape: Sequence[int],
    n_coils: int = 8,
    n_spokes: int | None = None,
    n_readout: int | None = None,
    phantom: str = "shepp_logan",
    snr_db: float | None = 30.0,
    seed: int = 0,
    backend: str = "auto",
) -> Acquisition:
    """A 3D radial ("kooshball") acquisition of an analytic phantom (see
    :func:`simulate_acquisition` for the model).

    Args:
        image_shape: reconstruction grid ``(nz, ny, nx)``.
        n_coils: birdcage coils.
        n_spokes: radial spokes; default :func:`radial_spokes` of the largest size ``N``
            (8-fold angular undersampling).
        n_readout: samples per spoke; default ``2 N`` (2x readout oversampling).
        phantom: ``"shepp_logan"``, ``"ellipsoids"`` or ``"angio"``.
        snr_db: k-space SNR in dB; ``None`` gives noise-free data.
        seed: noise and random-phantom seed.
        backend: NUFFT backend.

    Returns:
        :class:`~blockrecon.physics.acquisition.Acquisition` with kspace
        ``(coils, n_spokes, n_readout)``, the true maps and the reference image.
    """
    image_shape = check_image_shape(image_shape)
    size = max(image_shape)
    n_spokes = radial_spokes(size) if n_spokes is None else n_spokes
    n_readout = 2 * size if n_readout is None else n_readout
    coord = radial_coord(n_spokes, n_readout, image_shape)
    return simulate_acquisition(
        coord,
        image_shape,
        n_coils=n_coils,
        phantom=phantom,
        snr_db=snr_db,
        seed=seed,
        backend=backend,
    )
