"""The blockrecon HDF5 acquisition file: schema, writer and validating reader.

Schema (format version 1), everything at the root of the file::

    kspace         complex64  (coils, *sample_shape)        required
    coord          float32    (*sample_shape, ndim)         required, image-grid units,
                                                            -N/2 <= coord[..., d] <= N/2
    maps           complex64  (coils, *image_shape)         optional coil sensitivities
    dcf            float32    sample_shape                  optional density compensation (>= 0)
    image          complex64  image_shape                   optional reference image

    attribute blockrecon_format  "acquisition"
    attribute format_version     1 (int)
    attribute image_shape        ndim ints (ndim = 3; 2 for 2D data)
    attribute voxel_size_mm      ndim floats, same axis order as image_shape

``coord[..., d]`` belongs to image axis ``d`` (SigPy/BART convention: for a ``(nz, ny, nx)``
volume, ``coord[..., 2]`` is the x frequency). Complex data is stored as HDF5 compound
``{r, i}`` (h5py's native complex); compound ``{real, imag}`` (MATLAB, ISMRMRD) is read too.

Dtypes on read: complex128 and float64 datasets are accepted and converted to complex64 and
float32 (the precision blockrecon computes in); real k-space, maps or image, and integer
coordinates are rejected. Everything read is validated (:func:`blockrecon.io.check_acquisition`):
a missing file raises ``FileNotFoundError``; a file that is not HDF5, is truncated, lacks a
dataset or attribute, or holds a wrong dtype, shape, out-of-range coordinate or NaN/Inf raises
``ValueError`` whose message starts with the file's path and names the problem.

The writer validates first, then writes atomically (:mod:`blockrecon.atomic`): invalid data or
a failure half-way leaves no file behind (or the previous file untouched).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from blockrecon.atomic import atomic_path
from blockrecon.physics.acquisition import Acquisition, check_acquisition, standard_dtypes
from blockrecon.physics.validation import check_coord

__all__ = [
    "FORMAT_VERSION",
    "AcquisitionInfo",
    "open_hdf5",
    "read_acquisition",
    "read_acquisition_info",
    "read_dataset",
    "write_acquisition",
]

#: Version of the schema written by :func:`write_acquisition`; readers accept it and older ones.
FORMAT_VERSION = 1
_FORMAT_NAME = "acquisition"
_REQUIRED = ("kspace", "coord")
_OPTIONAL = ("maps", "dcf", "image")
_COMPLEX = ("kspace", "maps", "image")


@contextmanager
def open_hdf5(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open an existing HDF5 file for reading, with errors that name the file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        IsADirectoryError: if ``path`` is a directory.
        ValueError: if the file is not HDF5 or cannot be opened (truncated, corrupt).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not an HDF5 file")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path}: not an HDF5 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"{path}: cannot open the HDF5 file (truncated or corrupt?): {err}"
        ) from None
    with handle:
        yield handle


def read_dataset(handle: h5py.File, name: str, path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole dataset; ValueError naming the file if absent, not a dataset or unreadable."""
    if name not in handle:
        raise ValueError(f"{path}: missing dataset '{name}'")
    node = handle[name]
    if not isinstance(node, h5py.Dataset):
        raise ValueError(f"{path}: '{name}' is a {type(node).__name__}, expected a dataset")
    try:
        return node[()]
    except (OSError, RuntimeError) as err:
        raise ValueError(
            f"{path}: dataset '{name}' cannot be read (truncated or corrupt file?): {err}"
        ) from None


def compound_to_complex(array: np.ndarray) -> np.ndarray:
    """Turn a ``{real, imag}`` compound array into a complex one; other arrays pass through."""
    names = array.dtype.names
    if names is not None and len(names) == 2 and names[0].lower() in ("r", "real"):
        return array[names[0]] + 1j * array[names[1]]
    return array


def _to_tensor(array: np.ndarray, name: str, path: Path) -> torch.Tensor:
    """NumPy array from the file -> tensor; rejects dtypes the schema cannot mean."""
    array = compound_to_complex(np.asarray(array))
    if array.dtype.kind not in "fc" or array.dtype.itemsize > 16:
        raise ValueError(
            f"{path}: dataset '{name}' has dtype {array.dtype}, expected "
            f"{'complex64' if name in _COMPLEX else 'float32'}"
        )
    return torch.from_numpy(np.ascontiguousarray(array))


def _read_attribute(handle: h5py.File, name: str, path: Path) -> np.ndarray:
    if name not in handle.attrs:
        raise ValueError(f"{path}: missing attribute '{name}'")
    return np.asarray(handle.attrs[name])


def _read_geometry(handle: h5py.File, path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Read and type-check the ``image_shape`` and ``voxel_size_mm`` attributes."""
    shape = _read_attribute(handle, "image_shape", path)
    if shape.ndim != 1 or shape.dtype.kind not in "iu":
        raise ValueError(f"{path}: attribute 'image_shape' must be a list of ints, got {shape!r}")
    voxel = _read_attribute(handle, "voxel_size_mm", path)
    if voxel.ndim != 1 or voxel.dtype.kind not in "iuf":
        raise ValueError(
            f"{path}: attribute 'voxel_size_mm' must be a list of numbers, got {voxel!r}"
        )
    return tuple(int(n) for n in shape), tuple(float(v) for v in voxel)


def _check_format(handle: h5py.File, path: Path) -> None:
    for name in ("blockrecon_format", "format_version"):
        if name not in handle.attrs:
            raise ValueError(f"{path}: not a blockrecon acquisition file (no '{name}' attribute)")
    kind = handle.attrs["blockrecon_format"]
    if kind != _FORMAT_NAME:
        raise ValueError(f"{path}: blockrecon_format is {kind!r}, expected {_FORMAT_NAME!r}")
    version = handle.attrs["format_version"]
    if not np.issubdtype(np.asarray(version).dtype, np.integer) or np.ndim(version) != 0:
        raise ValueError(f"{path}: attribute 'format_version' must be an int, got {version!r}")
    if int(version) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {int(version)} is newer than this blockrecon "
            f"reads ({FORMAT_VERSION}); update blockrecon"
        )


def read_acquisition(path: str | os.PathLike[str]) -> Acquisition:
    """Read and validate a blockrecon HDF5 acquisition file (schema in the module docstring).

    Args:
        path: the ``.h5`` file.

    Returns:
        :class:`~blockrecon.io.Acquisition` of CPU tensors: complex64 kspace/maps/image,
        float32 coord/dcf (complex128/float64 in the file are converted).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file and the problem, for anything that does not fit the schema.
    """
    path = Path(path)
    with open_hdf5(path) as handle:
        _check_format(handle, path)
        image_shape, voxel_size_mm = _read_geometry(handle, path)
        present = [name for name in _REQUIRED + _OPTIONAL if name in _REQUIRED or name in handle]
        tensors = {
            name: _to_tensor(read_dataset(handle, name, path), name, path) for name in present
        }
    acquisition = standard_dtypes(
        Acquisition(image_shape=image_shape, voxel_size_mm=voxel_size_mm, **tensors)
    )
    check_acquisition(acquisition, str(path))
    return acquisition


#: Most coordinate bytes :func:`read_acquisition_info` reads to check their range (1 MiB).
INFO_COORD_BYTES = 2**20


@dataclass(frozen=True)
class AcquisitionInfo:
    """What a blockrecon HDF5 file holds, from its metadata (:func:`read_acquisition_info`).

    Attributes:
        path: the file.
        image_shape: ``ndim`` ints; ``voxel_size_mm``: ``ndim`` floats.
        num_coils: k-space coils; ``sample_shape``: the sample axes (``coord.shape[:-1]``).
        datasets: names of the datasets present (``kspace``, ``coord`` and optional ones).
        nbytes: bytes of the datasets in memory once read (complex64/float32).
    """

    path: Path
    image_shape: tuple[int, ...]
    voxel_size_mm: tuple[float, ...]
    num_coils: int
    sample_shape: tuple[int, ...]
    datasets: frozenset[str]
    nbytes: int

    def has(self, name: str) -> bool:
        """Whether the file holds dataset ``name``."""
        return name in self.datasets


def _dataset(handle: h5py.File, name: str, path: Path) -> h5py.Dataset:
    if name not in handle:
        raise ValueError(f"{path}: missing dataset '{name}'")
    node = handle[name]
    if not isinstance(node, h5py.Dataset):
        raise ValueError(f"{path}: '{name}' is a {type(node).__name__}, expected a dataset")
    kind = "c" if node.dtype.names is not None else node.dtype.kind  # {r, i} compounds
    if kind != ("c" if name in _COMPLEX else "f"):
        raise ValueError(
            f"{path}: dataset '{name}' has dtype {node.dtype}, expected "
            f"{'complex64' if name in _COMPLEX else 'float32'}"
        )
    return node


def _expected_shapes(
    image_shape: tuple[int, ...], coils: int, samples: tuple[int, ...]
) -> dict[str, tuple[int, ...]]:
    return {
        "kspace": (coils, *samples),
        "maps": (coils, *image_shape),
        "dcf": samples,
        "image": image_shape,
    }


def read_acquisition_info(path: str | os.PathLike[str]) -> AcquisitionInfo:
    """Check a blockrecon HDF5 file from its metadata and a bounded read, without reading it.

    Checks the format and geometry attributes, that ``kspace`` and ``coord`` exist, every
    dataset's dtype kind and shape against the others (the schema of the module docstring),
    and the range and finiteness of at most :data:`INFO_COORD_BYTES` of coordinates.
    :func:`read_acquisition` checks everything when the data are read.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file and the problem.
    """
    path = Path(path)
    with open_hdf5(path) as handle:
        _check_format(handle, path)
        image_shape, voxel_size_mm = _read_geometry(handle, path)
        coord = _dataset(handle, "coord", path)
        kspace = _dataset(handle, "kspace", path)
        if coord.ndim < 2 or coord.shape[-1] != len(image_shape):
            raise ValueError(
                f"{path}: coord must have shape (*samples, {len(image_shape)}), got {coord.shape}"
            )
        samples = tuple(coord.shape[:-1])
        if kspace.ndim != coord.ndim:
            raise ValueError(
                f"{path}: kspace must have shape (coils, *{samples}), got {kspace.shape}"
            )
        expected = _expected_shapes(image_shape, int(kspace.shape[0]), samples)
        present = {"kspace", "coord"} | {n for n in _OPTIONAL if n in handle}
        nbytes = 4 * coord.size
        for name in present - {"coord"}:
            node = _dataset(handle, name, path)
            if tuple(node.shape) != expected[name]:
                raise ValueError(
                    f"{path}: dataset '{name}' has shape {node.shape}, expected {expected[name]}"
                )
            nbytes += node.size * (8 if name in _COMPLEX else 4)
        rows = max(1, INFO_COORD_BYTES // max(1, 4 * math.prod(coord.shape[1:])))
        head = torch.from_numpy(np.asarray(coord[:rows], dtype=np.float32))
    try:
        check_coord(head, image_shape)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return AcquisitionInfo(
        path,
        image_shape,
        voxel_size_mm,
        int(kspace.shape[0]),
        samples,
        frozenset(present),
        int(nbytes),
    )


def write_acquisition(
    path: str | os.PathLike[str],
    acquisition: Acquisition,
    *,
    compression: str | None = None,
    attributes: dict[str, object] | None = None,
) -> Path:
    """Validate ``acquisition`` and write it as a blockrecon HDF5 file, atomically.

    Args:
        path: target file (its folder must exist); an existing file is replaced.
        acquisition: the data; complex128/float64 tensors are stored as complex64/float32.
        compression: HDF5 filter for the datasets, e.g. ``"gzip"`` or ``"lzf"``; ``None``
            (default) stores them uncompressed, the fastest to read and write.
        attributes: further root attributes that describe the data (how it was made, say):
            names other than the schema's, each value a string, a number or an array of
            numbers. Readers ignore them; h5py reads them back (``File(path).attrs``).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: ``"<path>: <problem>"`` if the acquisition is invalid, or an attribute has
            a schema name or another kind of value (nothing is written).
        FileNotFoundError: if the folder does not exist.
    """
    path = Path(path)
    acquisition = standard_dtypes(acquisition)
    check_acquisition(acquisition, str(path))
    extra = _extra_attributes(attributes or {}, path)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs.update(extra)
        handle.attrs["blockrecon_format"] = _FORMAT_NAME
        handle.attrs["format_version"] = np.int64(FORMAT_VERSION)
        handle.attrs["image_shape"] = np.asarray(acquisition.image_shape, dtype=np.int64)
        handle.attrs["voxel_size_mm"] = np.asarray(acquisition.voxel_size_mm, dtype=np.float64)
        for name in _REQUIRED + _OPTIONAL:
            value = getattr(acquisition, name)
            if value is not None:
                handle.create_dataset(
                    name, data=value.detach().cpu().numpy(), compression=compression
                )
    return path


def _extra_attributes(attributes: dict[str, object], path: Path) -> dict[str, object]:
    """``attributes`` checked for :func:`write_acquisition`: strings as they are, numbers and
    arrays of numbers as NumPy arrays."""
    schema = ("blockrecon_format", "format_version", "image_shape", "voxel_size_mm")
    checked: dict[str, object] = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or name in schema:
            raise ValueError(f"{path}: attribute name {name!r} is taken by the schema")
        array = np.asarray(value)
        if isinstance(value, str):
            checked[name] = value
        elif array.dtype.kind in "biuf":
            checked[name] = array
        else:
            raise ValueError(
                f"{path}: attribute {name!r} must be a string, a number or numbers, got {value!r}"
            )
    return checked
