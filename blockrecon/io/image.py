"""Writing a reconstructed image: NIfTI (magnitude, with the voxel size) or HDF5 (complex
``image`` dataset), chosen by the file name's suffix."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from blockrecon.atomic import atomic_path
from blockrecon.io.nifti import write_nifti

NIFTI_SUFFIXES = (".nii", ".nii.gz")
HDF5_SUFFIXES = (".h5", ".hdf5")
#: Suffixes :func:`write_image` writes.
IMAGE_SUFFIXES = NIFTI_SUFFIXES + HDF5_SUFFIXES


def write_image(
    path: str | os.PathLike[str], image: torch.Tensor, voxel_size_mm: Sequence[float], method: str
) -> None:
    """Write ``image`` (complex ``image_shape``) as NIfTI (magnitude, ``voxel_size_mm``) or as
    HDF5 (complex64 ``image`` dataset; attributes ``blockrecon_format = "image"``,
    ``voxel_size_mm`` and ``method``, the name of the reconstruction), atomically.

    Raises:
        ValueError: ``path`` ends in none of :data:`IMAGE_SUFFIXES`.
    """
    path = Path(path)
    if not path.name.endswith(IMAGE_SUFFIXES):
        raise ValueError(f"{path}: an image file must end in {', '.join(IMAGE_SUFFIXES)}")
    if path.name.endswith(NIFTI_SUFFIXES):
        write_nifti(path, image, voxel_size_mm)
        return
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.create_dataset("image", data=image.detach().cpu().numpy().astype(np.complex64))
        handle.attrs["blockrecon_format"] = "image"
        handle.attrs["voxel_size_mm"] = np.asarray(voxel_size_mm, dtype=np.float64)
        handle.attrs["method"] = method
