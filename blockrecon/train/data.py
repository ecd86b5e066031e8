"""Training pairs from acquisitions: normalization, files on disk, and moving pairs to a device.

Normalization (``normalize_pair``) makes one trained network usable across scanners and
trajectories. Two scalars are applied, neither changes the reconstruction problem:

* the operator is scaled to unit norm: ``E' = a E`` with ``a = 1 / sqrt(lambda_max(E^H E))``
  and ``y' = a y``, so a data-consistency step of about 1 is stable whatever the trajectory;
* the intensity is scaled to a unit peak: ``y'' = c y'`` and ``x'' = c x`` with ``c`` the inverse
  of the largest magnitude of the least-squares-scaled adjoint image ``s E'^H y'`` (the
  ``init="adjoint"`` starting point of :class:`~blockrecon.unrolled.UnrolledNet`).

A network trained on normalized pairs reconstructs ``x''``; the image at the data's own scale is
``x'' / c`` (``TrainingPair.intensity_scale`` holds ``c``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from blockrecon.io.hdf5 import read_acquisition
from blockrecon.physics import Sense, estimate_maps, max_eigenvalue, pipe_menon_dcf
from blockrecon.physics.acquisition import Acquisition


@dataclass(frozen=True)
class TrainingPair:
    """One example: k-space, its operator and the image to recover.

    Attributes:
        kspace: complex64 ``(coils, *samples)``.
        op: the :class:`~blockrecon.physics.Sense` operator of this acquisition.
        target: complex64 reference image ``image_shape`` (``None`` when there is none).
        intensity_scale: factor already applied to ``kspace`` and ``target`` (1 unless
            normalized, see the module docstring); divide a reconstruction by it to get
            the data's own scale.
    """

    kspace: torch.Tensor
    op: Sense
    target: torch.Tensor | None
    intensity_scale: float = 1.0


#: Power iterations for the operator norm: ample for a normalization (about 1% low for plain
#: radial operators; about 5% low with density weights, whose spectrum is flatter).
POWER_ITERATIONS = 10

#: Name stored with models trained on normalized pairs (model file ``extra``).
NORMALIZATION = "unit_operator_unit_peak"

#: Name stored with models whose data consistency was trained with density-weighted operators
#: (model file ``extra["density_weights"]``).
DENSITY_WEIGHTS = "pipe_menon"


def acquisition_maps(acq: Acquisition, estimate: bool = False, progress: bool = False,
                     method: str = "espirit", calib_width: int | None = None) -> torch.Tensor:
    """The acquisition's coil maps, or maps estimated from its k-space when it has none (or
    when ``estimate``) by ``method`` with ``calib_width`` (see
    :func:`~blockrecon.physics.maps.estimate_maps`). complex64 ``(coils, *image_shape)``."""
    if acq.maps is not None and not estimate:
        return acq.maps
    return estimate_maps(acq.kspace, acq.coord, acq.image_shape, method=method,
                         calib_width=calib_width, progress=progress)


def normalize_pair(kspace: torch.Tensor, maps: torch.Tensor, coord: torch.Tensor,
                   target: torch.Tensor | None = None, backend: str = "auto",
                   weights: torch.Tensor | None = None) -> TrainingPair:
    """The normalized pair of an acquisition (see the module docstring).

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        maps: complex ``(coils, *image_shape)``.
        coord: float32 ``(..., ndim)`` in grid units.
        target: complex reference image ``image_shape``, or ``None`` (inference).
        backend: NUFFT backend.
        weights: sample weights of the operator (:class:`~blockrecon.physics.Sense`), or
            ``None``; the norm is then that of ``E^H W E``.

    Returns:
        :class:`TrainingPair` with the scaled operator, k-space and target (``target`` is
        ``None`` when none was given) and ``intensity_scale = c``.
    """
    maps = maps.to(torch.complex64).clone()
    op = Sense(maps, coord, weights=weights, backend=backend)
    operator_scale = max_eigenvalue(op, n_iter=POWER_ITERATIONS) ** -0.5
    maps.mul_(operator_scale)  # op.maps is this tensor: E becomes a E, its Toeplitz kernel stays
    kspace = kspace.to(torch.complex64) * operator_scale
    with torch.no_grad():
        aty = op.normal_rhs(kspace)
        curvature = torch.vdot(aty.flatten(), op.normal(aty).flatten()).real
        peak = (aty.norm() ** 2 / curvature * aty.abs().max()).item()
    if not peak > 0:
        raise ValueError("the k-space data are zero: nothing to reconstruct")
    scale = 1.0 / peak
    return TrainingPair(kspace * scale, op, None if target is None else target * scale, scale)


def takes_normalized_data(extra: dict) -> bool:
    """Whether a model file's ``extra`` metadata says it was trained on normalized pairs."""
    return extra.get("data_normalization") == NORMALIZATION


def takes_density_weights(extra: dict) -> bool:
    """Whether a model file's ``extra`` metadata says its data consistency was trained with
    density-weighted operators (``E^H W E``, ``W`` the Pipe-Menon weights of the trajectory)."""
    return extra.get("density_weights") == DENSITY_WEIGHTS


def reconstruct_with_model(model: torch.nn.Module, kspace: torch.Tensor, maps: torch.Tensor,
                           coord: torch.Tensor, extra: dict, backend: str = "auto",
                           dcf: torch.Tensor | None = None, progress: bool = False
                           ) -> torch.Tensor:
    """Apply an unrolled network to data prepared as it was trained.

    Args:
        model: :class:`~blockrecon.unrolled.UnrolledNet` (eval mode).
        kspace: complex ``(coils, *coord.shape[:-1])``.
        maps: complex ``(coils, *image_shape)``.
        coord: float32 ``(..., ndim)`` in grid units.
        extra: the model file's metadata. It says whether the model takes normalized pairs
            (:func:`takes_normalized_data`; else data at the object's own scale) and
            density-weighted operators (:func:`takes_density_weights`).
        backend: NUFFT backend.
        dcf: density weights ``coord.shape[:-1]`` to use when the model takes them (e.g. an
            acquisition's stored DCF); ``None`` computes Pipe-Menon weights.
        progress: progress bar while computing density weights.

    Returns:
        complex64 image ``image_shape`` at the data's own scale.
    """
    weights = None
    if takes_density_weights(extra):
        weights = dcf if dcf is not None else pipe_menon_dcf(
            coord, maps.shape[1:], backend=backend, progress=progress)
    if takes_normalized_data(extra):
        pair = normalize_pair(kspace, maps, coord, backend=backend, weights=weights)
    else:
        pair = TrainingPair(kspace, Sense(maps, coord, weights=weights, backend=backend), None)
    with torch.no_grad():
        return model(pair.kspace, pair.op) / pair.intensity_scale


def pair_to(pair: TrainingPair, device: torch.device | str) -> TrainingPair:
    """The pair with its tensors and operator on ``device`` (the same pair if already there)."""
    device = torch.device(device)
    if pair.kspace.device == device:
        return pair
    weights = pair.op.weights
    op = Sense(pair.op.maps.to(device), pair.op.nufft.coord.to(device),
               weights=None if weights is None else weights.to(device),
               backend=pair.op.nufft.backend)
    target = None if pair.target is None else pair.target.to(device)
    return replace(pair, kspace=pair.kspace.to(device), op=op, target=target)


class AcquisitionFiles(Dataset):
    """Normalized training pairs from blockrecon HDF5 files, each with a reference image.

    Every file is read and validated once at construction (errors name the file); items are
    read again on access and cached in memory when ``cache``. Files without coil maps get
    maps estimated from their k-space (``maps_method``, ``calib_width``: see
    :func:`acquisition_maps`).

    Args:
        paths: the ``.h5`` files.
        backend: NUFFT backend.
        cache: keep built pairs in memory.
        density_weights: give the operators density weights (a file's stored DCF, else
            Pipe-Menon weights of its trajectory).
        maps_method: ``"espirit"`` or ``"jsense"``, for files without maps.
        calib_width: calibration width of the estimation (``None``: from the trajectory).
    """

    def __init__(self, paths: list[str | os.PathLike[str]], backend: str = "auto",
                 cache: bool = True, density_weights: bool = False,
                 maps_method: str = "espirit", calib_width: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no training files given")
        for path in self.paths:
            if read_acquisition(path).image is None:
                raise ValueError(f"{path}: no reference image ('image' dataset) to train on")
        self.backend, self.density_weights = backend, density_weights
        self.maps_method, self.calib_width = maps_method, calib_width
        self._cache: dict[int, TrainingPair] | None = {} if cache else None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], **kwargs) -> AcquisitionFiles:
        """All ``*.h5`` files of ``folder``, in name order."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist")
        paths = sorted(folder.glob("*.h5"))
        if not paths:
            raise ValueError(f"data folder {folder} holds no .h5 files")
        return cls(paths, **kwargs)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> TrainingPair:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"index {index} out of range for {len(self.paths)} files")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        acq = read_acquisition(self.paths[index])
        weights = None
        if self.density_weights:
            weights = acq.dcf if acq.dcf is not None else pipe_menon_dcf(
                acq.coord, acq.image_shape, backend=self.backend, progress=False)
        maps = acquisition_maps(acq, method=self.maps_method, calib_width=self.calib_width)
        pair = normalize_pair(acq.kspace, maps, acq.coord, acq.image,
                              self.backend, weights)
        if self._cache is not None:
            self._cache[index] = pair
        return pair
