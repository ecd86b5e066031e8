"""ULM acquisition files (HDF5): :class:`~blockrecon.ulm.acquisition.UlmAcquisition` on disk.

Layout::

    /iq           complex64 (frames, *spatial)
    /positions    float32 (n_points, ndim)      lambda
    /frames       int64 (n_points,)
    /track_ids    int64 (n_points,)
    /amplitudes   float32 (n_points,)
    attrs: pixel_size (ndim,) lambda, frame_rate Hz, wavelength m, metadata (JSON text)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import torch

from blockrecon.atomic import atomic_path
from blockrecon.ulm.acquisition import UlmAcquisition

__all__ = ["read_ulm_acquisition", "read_ulm_iq", "write_ulm_acquisition"]

#: Point-table datasets and the dtype each is stored with.
_POINT_FIELDS = {
    "positions": np.float32,
    "frames": np.int64,
    "track_ids": np.int64,
    "amplitudes": np.float32,
}


def write_ulm_acquisition(path: str | os.PathLike[str], acquisition: UlmAcquisition) -> Path:
    """Write ``acquisition`` to an HDF5 file atomically (:mod:`blockrecon.atomic`).

    Raises:
        FileNotFoundError: if the folder of ``path`` does not exist.
    """
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
        iq = acquisition.iq.resolve_conj().numpy().astype(np.complex64, copy=False)
        f.create_dataset("iq", data=iq, chunks=True)  # validated when the acquisition was made
        for name, dtype in _POINT_FIELDS.items():
            f.create_dataset(
                name, data=getattr(acquisition, name).numpy().astype(dtype, copy=False)
            )
        f.attrs["pixel_size"] = np.asarray(acquisition.pixel_size, dtype=np.float64)
        f.attrs["frame_rate"] = acquisition.frame_rate
        f.attrs["wavelength"] = acquisition.wavelength
        f.attrs["metadata"] = json.dumps(acquisition.metadata)
    return Path(path)


def _read_dataset(f: h5py.File, name: str, path: Path) -> np.ndarray:
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise ValueError(f"{path}: missing dataset /{name}")
    return f[name][()]


@contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[tuple[h5py.File, Path]]:
    """The file at ``path`` open for reading, and its path.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not an HDF5 file.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    try:
        f = h5py.File(source, "r")
    except OSError as err:
        raise ValueError(f"{source}: not a readable HDF5 file ({err})") from err
    with f:
        yield f, source


def _read_iq(f: h5py.File, source: Path) -> torch.Tensor:
    """``/iq`` as complex64, its dtype and dimensionality checked before it is read."""
    if "iq" not in f or not isinstance(f["iq"], h5py.Dataset):
        raise ValueError(f"{source}: missing dataset /iq")
    dataset = f["iq"]
    if not np.issubdtype(dataset.dtype, np.complexfloating):
        raise ValueError(f"{source}: /iq must be complex, got {dataset.dtype}")
    if dataset.ndim not in (3, 4):
        raise ValueError(
            f"{source}: /iq must have shape (frames, nz, nx) or (frames, nz, ny, nx), "
            f"got {dataset.shape}"
        )
    return torch.from_numpy(dataset[()].astype(np.complex64))


def _read_attrs(f: h5py.File, source: Path) -> dict:
    missing = [
        a for a in ("pixel_size", "frame_rate", "wavelength", "metadata") if a not in f.attrs
    ]
    if missing:
        raise ValueError(f"{source}: missing attribute(s) {', '.join(missing)}")
    attrs = dict(f.attrs)
    return {
        "pixel_size": tuple(float(p) for p in np.atleast_1d(attrs["pixel_size"])),
        "frame_rate": float(attrs["frame_rate"]),
        "wavelength": float(attrs["wavelength"]),
        "metadata": json.loads(attrs["metadata"]),
    }


def _acquisition(source: Path, iq: torch.Tensor, points: dict, attrs: dict) -> UlmAcquisition:
    try:
        return UlmAcquisition(iq=iq, **points, **attrs)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err


def read_ulm_acquisition(path: str | os.PathLike[str]) -> UlmAcquisition:
    """Read an acquisition written by :func:`write_ulm_acquisition`, validating every field
    (:class:`~blockrecon.ulm.acquisition.UlmAcquisition` checks its content).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not HDF5, lacks a field, or holds inconsistent/non-finite data.
    """
    with _opened(path) as (f, source):
        iq = _read_iq(f, source)
        points = {
            name: torch.from_numpy(_read_dataset(f, name, source).astype(dtype))
            for name, dtype in _POINT_FIELDS.items()
        }
        attrs = _read_attrs(f, source)
    return _acquisition(source, iq, points, attrs)


def read_ulm_iq(path: str | os.PathLike[str]) -> UlmAcquisition:
    """Read the IQ frames and the grid of an acquisition file (``/iq`` and the attributes; the
    point table, e.g. of measured data, may be absent and is not read): an acquisition with an
    empty point table.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: not HDF5; ``/iq`` missing, not complex or not ``(frames, *spatial)`` with 2
            or 3 spatial axes (checked before it is read); attributes missing or invalid.
    """
    with _opened(path) as (f, source):
        iq = _read_iq(f, source)
        attrs = _read_attrs(f, source)
    ndim = iq.ndim - 1
    points = {
        name: torch.from_numpy(np.zeros((0, ndim) if name == "positions" else 0, dtype))
        for name, dtype in _POINT_FIELDS.items()
    }
    return _acquisition(source, iq, points, attrs)
