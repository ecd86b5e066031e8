"""Reading a scan to reconstruct: a blockrecon HDF5 or ISMRMRD acquisition, told apart by
content, and coil maps from a separate HDF5 file."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch

from blockrecon.io.hdf5 import (
    AcquisitionInfo,
    compound_to_complex,
    open_hdf5,
    read_acquisition,
    read_acquisition_info,
    read_dataset,
)
from blockrecon.io.ismrmrd import read_ismrmrd
from blockrecon.physics.acquisition import Acquisition, check_acquisition


def _kind(path: Path) -> str:
    """``"blockrecon"`` or ``"ismrmrd"``, told apart by content; ValueError for neither."""
    with open_hdf5(path) as handle:
        if "blockrecon_format" in handle.attrs:
            return "blockrecon"
        if isinstance(handle.get("dataset"), h5py.Group) or path.suffix == ".mrd":
            return "ismrmrd"
    raise ValueError(
        f"{path}: neither a blockrecon acquisition file (no 'blockrecon_format' "
        "attribute) nor an ISMRMRD file (no 'dataset' group)"
    )


def read_scan(path: str | os.PathLike[str]) -> Acquisition:
    """A blockrecon HDF5 file (``blockrecon_format`` attribute) or an ISMRMRD file (a
    ``dataset`` group, or a ``.mrd`` name), told apart by their content; validated.

    Raises:
        FileNotFoundError, ValueError: the file is absent, not HDF5, neither kind, or invalid
            (the message names the file).
    """
    path = Path(path)
    return read_acquisition(path) if _kind(path) == "blockrecon" else read_ismrmrd(path)


def read_scan_info(path: str | os.PathLike[str]) -> AcquisitionInfo:
    """What a scan file holds: from the metadata and a bounded read of a blockrecon file
    (:func:`~blockrecon.io.hdf5.read_acquisition_info`); an ISMRMRD file, whose samples are
    stored as per-readout records, is read and validated whole.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_scan`.
    """
    path = Path(path)
    if _kind(path) == "blockrecon":
        return read_acquisition_info(path)
    acq = read_ismrmrd(path)
    fields = {"kspace": acq.kspace, "coord": acq.coord, "maps": acq.maps, "dcf": acq.dcf}
    fields["image"] = acq.image
    present = {name: t for name, t in fields.items() if t is not None}
    return AcquisitionInfo(
        path,
        acq.image_shape,
        acq.voxel_size_mm,
        acq.num_coils,
        acq.sample_shape,
        frozenset(present),
        sum(t.numel() * t.element_size() for t in present.values()),
    )


def read_maps(path: str | os.PathLike[str], acq: Acquisition) -> torch.Tensor:
    """The ``maps`` dataset of an HDF5 file (complex, or a ``{r, i}`` compound) as complex64
    ``(coils, *image_shape)``, checked against ``acq`` (coil count, image shape, finite values).

    Raises:
        FileNotFoundError, ValueError: no such file or dataset, not complex, or not fitting
            ``acq`` (the message names the file).
    """
    with open_hdf5(path) as handle:
        array = compound_to_complex(read_dataset(handle, "maps", path))
    if not np.iscomplexobj(array):
        raise ValueError(f"{path}: dataset 'maps' has dtype {array.dtype}, expected complex64")
    maps = torch.from_numpy(np.ascontiguousarray(array, dtype=np.complex64))
    check_acquisition(replace(acq, maps=maps), str(path))
    return maps
