"""Training pairs streamed from scan files on disk, within a memory budget.

A folder of 3D scans at the source's scale (320x240x320, 8 coils: 2-3 GB per built pair with
its maps and Toeplitz kernel) does not fit in memory whole. :class:`AcquisitionFiles` checks
every file at construction from its metadata and a bounded read
(:func:`~blockrecon.io.scan.read_scan_info`), reads, validates and builds a pair when it is
first needed, and keeps built pairs while they fit its budget
(:class:`~blockrecon.train.cache.PairCache`); the others are rebuilt on each access.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

from torch.utils.data import Dataset

from blockrecon.inference import acquisition_maps
from blockrecon.io.hdf5 import AcquisitionInfo
from blockrecon.io.scan import read_scan, read_scan_info
from blockrecon.physics import compress_acquisition, pipe_menon_dcf
from blockrecon.train.cache import PairCache
from blockrecon.train.data import TrainingPair, normalize_pair

__all__ = ["SCAN_SUFFIXES", "AcquisitionFiles", "estimated_pair_bytes"]

#: File name endings a training folder is searched for.
SCAN_SUFFIXES = (".h5", ".hdf5", ".mrd")


def estimated_pair_bytes(
    info: AcquisitionInfo, coils: int | None = None, weights: bool = False
) -> int:
    """Bytes of the pair built from a file (:func:`~blockrecon.train.cache.pair_nbytes`),
    from its metadata: complex64 k-space and maps of ``coils`` coils (default all), float32
    trajectory (and density ``weights``), the reference image and the float32 Toeplitz kernel
    on the 2x grid."""
    coils = info.num_coils if coils is None else coils
    samples, voxels = math.prod(info.sample_shape), math.prod(info.image_shape)
    total = 8 * coils * (samples + voxels) + 4 * samples * (len(info.image_shape) + weights)
    if info.has("image"):
        total += 8 * voxels
    return total + 4 * voxels * 2 ** len(info.image_shape)


class AcquisitionFiles(Dataset):
    """Normalized training pairs from blockrecon HDF5 or ISMRMRD files.

    Files without coil maps get maps estimated from their k-space (``maps_method``,
    ``calib_width``: see :func:`~blockrecon.inference.acquisition_maps`).

    Args:
        paths: the scan files.
        backend: NUFFT backend.
        memory_budget: bytes of built pairs kept in memory (``None``: every pair; 0: none, each
            access rebuilds). The cache (:attr:`cache`) can be shared with views of this
            dataset (:class:`~blockrecon.train.kspace_split.KspaceSplits`).
        density_weights: give the operators density weights (a file's stored DCF, else
            Pipe-Menon weights of its trajectory).
        maps_method: ``"espirit"`` or ``"jsense"``, for files without maps.
        calib_width: calibration width of the estimation (``None``: from the trajectory).
        compress_coils: compress each file's k-space (and stored maps) to this many virtual
            coils (:func:`~blockrecon.physics.compress_acquisition`; maps are then estimated on
            the virtual coils), or ``None`` to keep all coils.
        require_image: every file must hold a reference image (supervised training); pass
            ``False`` for self-supervised training.

    Raises:
        FileNotFoundError, ValueError: a file is absent or invalid (the message names it), has
            no reference image when ``require_image``, or fewer coils than ``compress_coils``.
    """

    def __init__(
        self,
        paths: list[str | os.PathLike[str]],
        backend: str = "auto",
        memory_budget: int | None = None,
        density_weights: bool = False,
        maps_method: str = "espirit",
        calib_width: int | None = None,
        compress_coils: int | None = None,
        require_image: bool = True,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no training files given")
        self.infos = [read_scan_info(path) for path in self.paths]
        for info in self.infos:
            if require_image and not info.has("image"):
                raise ValueError(
                    f"{info.path}: no reference image ('image' dataset) to train on; "
                    "train self-supervised instead"
                )
            if compress_coils is not None and compress_coils > info.num_coils:
                raise ValueError(
                    f"{info.path}: {compress_coils} virtual coils exceed its {info.num_coils} coils"
                )
        self.backend, self.density_weights = backend, density_weights
        self.maps_method, self.calib_width = maps_method, calib_width
        self.compress_coils = compress_coils
        self.cache = PairCache(memory_budget)
        self._key = object()  # this dataset's keys in a cache it may share

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], **kwargs) -> AcquisitionFiles:
        """All scan files of ``folder`` (:data:`SCAN_SUFFIXES`), in name order."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist")
        paths = sorted(p for p in folder.iterdir() if p.suffix in SCAN_SUFFIXES and p.is_file())
        if not paths:
            raise ValueError(
                f"data folder {folder} holds no scan files ({', '.join(SCAN_SUFFIXES)})"
            )
        return cls(paths, **kwargs)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: range) -> AcquisitionFiles:
        """The files ``indices`` with these settings, sharing this dataset's checked file
        information and its cache (one memory budget for both), without reading any file."""
        part = copy.copy(self)
        part.paths = [self.paths[i] for i in indices]
        part.infos = [self.infos[i] for i in indices]
        part._key = object()
        return part

    @property
    def readouts(self) -> list[int]:
        """Readouts (the first sample axis) of each file."""
        return [info.sample_shape[0] for info in self.infos]

    def estimated_bytes(self) -> int:
        """Bytes of all the built pairs together (:func:`estimated_pair_bytes`)."""
        return sum(
            estimated_pair_bytes(info, self.compress_coils, self.density_weights)
            for info in self.infos
        )

    def __getitem__(self, index: int) -> TrainingPair:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"index {index} out of range for {len(self.paths)} files")
        return self.cache.get((self._key, index), lambda: self._build(index))

    def _build(self, index: int) -> TrainingPair:
        acq = compress_acquisition(read_scan(self.paths[index]), self.compress_coils)
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
        return normalize_pair(acq.kspace, maps, acq.coord, acq.image, self.backend, weights)
