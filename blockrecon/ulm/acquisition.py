"""A ULM acquisition: beamformed IQ frames plus (for simulations) the true bubble positions.

Coordinates are in wavelengths (lambda), one column per spatial axis of ``iq`` in the same order
(depth first); voxel ``i`` along axis ``d`` is centred at ``i * pixel_size[d]``. Bubble positions
are stored as a flat point table (one row per bubble per frame) with the frame index and the
track (bubble) id of each row.

HDF5 layout (``save_acquisition`` / ``load_acquisition``)::

    /iq           complex64 (frames, *spatial)
    /positions    float32 (n_points, ndim)      lambda
    /frames       int64 (n_points,)
    /track_ids    int64 (n_points,)
    /amplitudes   float32 (n_points,)
    attrs: pixel_size (ndim,) lambda, frame_rate Hz, wavelength m, metadata (JSON text)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from blockrecon.atomic import atomic_path
from blockrecon.ulm._checks import check_iq, check_points

#: Point-table datasets and the dtype each is stored with.
_POINT_FIELDS = {"positions": np.float32, "frames": np.int64, "track_ids": np.int64,
                 "amplitudes": np.float32}


@dataclass(frozen=True)
class UlmAcquisition:
    """IQ frames and ground truth of a ULM acquisition.

    Attributes:
        iq: complex64 ``(frames, nz, nx)`` or ``(frames, nz, ny, nx)``.
        positions: float32 ``(n_points, ndim)``, true bubble positions in lambda.
        frames: int64 ``(n_points,)``, frame of each position (sorted ascending).
        track_ids: int64 ``(n_points,)``, bubble id of each position.
        amplitudes: float32 ``(n_points,)``, scattering amplitude of each position.
        pixel_size: voxel size per spatial axis, lambda.
        frame_rate: frames per second (Hz).
        wavelength: lambda in metres.
        metadata: JSON-serializable description (simulation parameters, seed, ...).
    """

    iq: torch.Tensor
    positions: torch.Tensor
    frames: torch.Tensor
    track_ids: torch.Tensor
    amplitudes: torch.Tensor
    pixel_size: tuple[float, ...]
    frame_rate: float
    wavelength: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_iq(self.iq)
        check_points(self.positions, self.frames, self.iq.ndim - 1, name="positions")
        n = len(self.frames)
        for name in ("track_ids", "amplitudes"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got "
                                 f"{tuple(getattr(self, name).shape)}")
        if len(self.pixel_size) != self.iq.ndim - 1 or not all(
                math.isfinite(p) and p > 0 for p in self.pixel_size):
            raise ValueError(f"pixel_size must hold {self.iq.ndim - 1} positive values, got "
                             f"{self.pixel_size}")
        if n and (bool((self.frames[1:] < self.frames[:-1]).any())
                  or int(self.frames[-1]) >= self.n_frames):
            raise ValueError(f"frames of the positions must be sorted ascending and below the "
                             f"{self.n_frames} frames of iq")
        if not self.frame_rate > 0 or not self.wavelength > 0:
            raise ValueError("frame_rate and wavelength must be positive")

    @property
    def n_frames(self) -> int:
        return self.iq.shape[0]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.iq.shape[1:])


def save_acquisition(acquisition: UlmAcquisition, path: str | os.PathLike[str]) -> Path:
    """Write ``acquisition`` to an HDF5 file atomically (:mod:`blockrecon.atomic`).

    Raises:
        FileNotFoundError: if the folder of ``path`` does not exist.
    """
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
        iq = acquisition.iq.resolve_conj().numpy().astype(np.complex64, copy=False)
        f.create_dataset("iq", data=iq, chunks=True)  # validated when the acquisition was made
        for name, dtype in _POINT_FIELDS.items():
            f.create_dataset(name, data=getattr(acquisition, name).numpy().astype(dtype,
                                                                                 copy=False))
        f.attrs["pixel_size"] = np.asarray(acquisition.pixel_size, dtype=np.float64)
        f.attrs["frame_rate"] = acquisition.frame_rate
        f.attrs["wavelength"] = acquisition.wavelength
        f.attrs["metadata"] = json.dumps(acquisition.metadata)
    return Path(path)


def _read_dataset(f: h5py.File, name: str, path: Path) -> np.ndarray:
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise ValueError(f"{path}: missing dataset /{name}")
    return f[name][()]


def load_acquisition(path: str | os.PathLike[str]) -> UlmAcquisition:
    """Read an acquisition written by :func:`save_acquisition`, validating every field.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not HDF5, lacks a field, or holds inconsistent/non-finite data.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    try:
        f = h5py.File(source, "r")
    except OSError as err:
        raise ValueError(f"{source}: not a readable HDF5 file ({err})") from err
    with f:
        arrays = {name: _read_dataset(f, name, source) for name in ("iq", *_POINT_FIELDS)}
        missing = [a for a in ("pixel_size", "frame_rate", "wavelength", "metadata")
                   if a not in f.attrs]
        if missing:
            raise ValueError(f"{source}: missing attribute(s) {', '.join(missing)}")
        attrs = dict(f.attrs)
    if not np.iscomplexobj(arrays["iq"]):
        raise ValueError(f"{source}: /iq must be complex, got {arrays['iq'].dtype}")
    try:
        return UlmAcquisition(
            iq=torch.from_numpy(arrays["iq"].astype(np.complex64)),
            positions=torch.from_numpy(arrays["positions"].astype(np.float32)),
            frames=torch.from_numpy(arrays["frames"].astype(np.int64)),
            track_ids=torch.from_numpy(arrays["track_ids"].astype(np.int64)),
            amplitudes=torch.from_numpy(arrays["amplitudes"].astype(np.float32)),
            pixel_size=tuple(float(p) for p in np.atleast_1d(attrs["pixel_size"])),
            frame_rate=float(attrs["frame_rate"]),
            wavelength=float(attrs["wavelength"]),
            metadata=json.loads(attrs["metadata"]),
        )
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err
