"""Training pairs from acquisitions: normalization, files on disk, and moving pairs to a device.

Pairs are normalized as :mod:`blockrecon.inference` prepares data for a model
(:func:`~blockrecon.inference.normalize`), so that a trained network gets its data at
reconstruction time as it got them in training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from blockrecon.inference import acquisition_maps, normalize
from blockrecon.io.hdf5 import read_acquisition
from blockrecon.physics import Sense, compress_acquisition, pipe_menon_dcf


@dataclass(frozen=True)
class HeldOutSamples:
    """Measured samples kept out of the network's input, to compare its image with.

    Attributes:
        kspace: complex64 ``(coils, *samples)``, scaled as the pair's k-space.
        op: the :class:`~blockrecon.physics.Sense` operator of these samples, scaled as the
            pair's operator before any renormalization of the input samples' operator, so that
            ``op(x)`` of the pair's image ``x`` is comparable with ``kspace``.
    """

    kspace: torch.Tensor
    op: Sense


@dataclass(frozen=True)
class TrainingPair:
    """One example: k-space, its operator and what to compare the network's image with.

    Attributes:
        kspace: complex64 ``(coils, *samples)``.
        op: the :class:`~blockrecon.physics.Sense` operator of this acquisition.
        target: complex64 reference image ``image_shape`` (``None`` when there is none).
        intensity_scale: factor already applied to ``kspace`` and ``target`` (1 unless
            normalized, see :mod:`blockrecon.inference`); divide a reconstruction by it to get
            the data's own scale.
        heldout: samples of the same acquisition withheld from ``kspace`` for a
            self-supervised loss (:mod:`blockrecon.train.kspace_split`), or ``None``.
    """

    kspace: torch.Tensor
    op: Sense
    target: torch.Tensor | None
    intensity_scale: float = 1.0
    heldout: HeldOutSamples | None = None


def normalize_pair(
    kspace: torch.Tensor,
    maps: torch.Tensor,
    coord: torch.Tensor,
    target: torch.Tensor | None = None,
    backend: str = "auto",
    weights: torch.Tensor | None = None,
) -> TrainingPair:
    """The normalized pair of an acquisition (:func:`~blockrecon.inference.normalize`).

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
    inputs = normalize(kspace, maps, coord, backend=backend, weights=weights)
    target = None if target is None else target * inputs.intensity_scale
    return TrainingPair(inputs.kspace, inputs.op, target, inputs.intensity_scale)


def sense_to(op: Sense, device: torch.device) -> Sense:
    """The same SENSE operator (maps, trajectory, weights, backend) on ``device``."""
    weights = op.weights
    return Sense(
        op.maps.to(device),
        op.nufft.coord.to(device),
        weights=None if weights is None else weights.to(device),
        backend=op.nufft.backend,
    )


def pair_to(pair: TrainingPair, device: torch.device | str) -> TrainingPair:
    """The pair with its tensors and operators on ``device`` (the same pair if already there)."""
    device = torch.device(device)
    if pair.kspace.device == device:
        return pair
    target = None if pair.target is None else pair.target.to(device)
    heldout = pair.heldout
    if heldout is not None:
        heldout = HeldOutSamples(heldout.kspace.to(device), sense_to(heldout.op, device))
    return replace(
        pair,
        kspace=pair.kspace.to(device),
        op=sense_to(pair.op, device),
        target=target,
        heldout=heldout,
    )


class AcquisitionFiles(Dataset):
    """Normalized training pairs from blockrecon HDF5 files, each with a reference image.

    Every file is read and validated once at construction (errors name the file); items are
    read again on access and cached in memory when ``cache``. Files without coil maps get
    maps estimated from their k-space (``maps_method``, ``calib_width``: see
    :func:`~blockrecon.inference.acquisition_maps`).

    Args:
        paths: the ``.h5`` files.
        backend: NUFFT backend.
        cache: keep built pairs in memory.
        density_weights: give the operators density weights (a file's stored DCF, else
            Pipe-Menon weights of its trajectory).
        maps_method: ``"espirit"`` or ``"jsense"``, for files without maps.
        calib_width: calibration width of the estimation (``None``: from the trajectory).
        compress_coils: compress each file's k-space (and stored maps) to this many virtual
            coils (:func:`~blockrecon.physics.compress_acquisition`; maps are then estimated on
            the virtual coils), or ``None`` to keep all coils.
    """

    def __init__(
        self,
        paths: list[str | os.PathLike[str]],
        backend: str = "auto",
        cache: bool = True,
        density_weights: bool = False,
        maps_method: str = "espirit",
        calib_width: int | None = None,
        compress_coils: int | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no training files given")
        for path in self.paths:
            acq = read_acquisition(path)
            if acq.image is None:
                raise ValueError(f"{path}: no reference image ('image' dataset) to train on")
            if compress_coils is not None and compress_coils > acq.num_coils:
                raise ValueError(
                    f"{path}: {compress_coils} virtual coils exceed its {acq.num_coils} coils"
                )
        self.backend, self.density_weights = backend, density_weights
        self.maps_method, self.calib_width = maps_method, calib_width
        self.compress_coils = compress_coils
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
        acq = compress_acquisition(read_acquisition(self.paths[index]), self.compress_coils)
        weights = None
        if self.density_weights:
            weights = (
                acq.dcf
                if acq.dcf is not None
                else pipe_menon_dcf(
                    acq.coord, acq.image_shape, backend=self.backend, progress=False
                )
            )
        maps = acquisition_maps(
            acq, method=self.maps_method, calib_width=self.calib_width, backend=self.backend
        )
        pair = normalize_pair(acq.kspace, maps, acq.coord, acq.image, self.backend, weights)
        if self._cache is not None:
            self._cache[index] = pair
        return pair
