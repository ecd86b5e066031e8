"""NIfTI-1 export of reconstructed volumes.

Geometry written (RAS+, millimetres): the affine is diagonal with the voxel sizes, and the
voxel at index ``N // 2`` of each axis (the FFT centre, where the NUFFT puts position 0) sits at
world coordinate 0. Both qform and sform carry it (code 2, "aligned"); units are mm.

Axis order: blockrecon volumes are NumPy/SigPy ordered ``(z, y, x)``, x varying fastest, and
``voxel_size_mm`` follows the same order. NIfTI stores ``(i, j, k) = (x, y, z)``, so a ``"zyx"``
volume (the default) is transposed on writing; pass ``axis_order="xyz"`` for a volume already
in NIfTI order. x points to the subject's right (R), y anterior (A), z superior (S); the
orientation of the acquisition relative to the patient is not known here and not applied.

Complex volumes are written as magnitude by default (float32); ``complex_mode="real_imag"``
writes a 4D float32 ``(x, y, z, 2)`` image (real, imaginary), ``"complex"`` a complex64 NIfTI.
Real volumes are written as float32 whatever the mode. Vector fields
(:func:`write_nifti_vector`) are written as NIfTI vector images ``(x, y, z, 1, 3)``. Writing is
atomic and validated first: NaN/Inf, a wrong shape or voxel size raise ``ValueError`` and leave
no file behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from blockrecon.atomic import atomic_path
from blockrecon.physics.validation import check_finite

__all__ = ["write_nifti", "write_nifti_vector", "nifti_affine", "read_nifti_volume"]

COMPLEX_MODES = ("magnitude", "real_imag", "complex")
AXIS_ORDERS = ("zyx", "xyz")
_SUFFIXES = (".nii", ".nii.gz")


def nifti_affine(shape_xyz: Sequence[int], voxel_size_xyz: Sequence[float]) -> np.ndarray:
    """4x4 RAS+ affine: voxel sizes on the diagonal, voxel ``N // 2`` at the origin.

    Args:
        shape_xyz: volume shape in NIfTI order ``(nx, ny, nz)``.
        voxel_size_xyz: voxel size in mm in the same order.
    """
    affine = np.diag([*map(float, voxel_size_xyz), 1.0])
    affine[:3, 3] = [-size * (n // 2) for n, size in zip(shape_xyz, voxel_size_xyz, strict=True)]
    return affine


def _check_arguments(
    path: Path,
    volume: torch.Tensor,
    voxel_size_mm: Sequence[float],
    complex_mode: str,
    axis_order: str,
) -> None:
    if not path.name.endswith(_SUFFIXES):
        raise ValueError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")
    if not isinstance(volume, torch.Tensor):
        raise ValueError(f"volume must be a torch.Tensor, got {type(volume).__name__}")
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {tuple(volume.shape)}")
    if not (volume.is_complex() or volume.is_floating_point()):
        raise ValueError(f"volume must be real or complex floating point, got {volume.dtype}")
    if len(voxel_size_mm) != 3 or not all(math.isfinite(v) and v > 0 for v in voxel_size_mm):
        raise ValueError(f"voxel_size_mm must be 3 positive numbers, got {tuple(voxel_size_mm)}")
    if complex_mode not in COMPLEX_MODES:
        raise ValueError(f"complex_mode must be one of {COMPLEX_MODES}, got {complex_mode!r}")
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis_order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    check_finite(volume, "volume")


def _voxel_values(volume: np.ndarray, complex_mode: str) -> np.ndarray:
    """The array NIfTI stores for a volume in (x, y, z) order."""
    if not np.iscomplexobj(volume):
        return volume.astype(np.float32)
    if complex_mode == "magnitude":
        return np.abs(volume).astype(np.float32)
    if complex_mode == "real_imag":
        return np.stack([volume.real, volume.imag], axis=-1).astype(np.float32)
    return volume.astype(np.complex64)


def write_nifti(
    path: str | os.PathLike[str],
    volume: torch.Tensor,
    voxel_size_mm: Sequence[float],
    *,
    complex_mode: str = "magnitude",
    axis_order: str = "zyx",
) -> Path:
    """Write a 3D volume as NIfTI-1 (``.nii`` or ``.nii.gz``), atomically.

    Args:
        path: target file; its folder must exist; an existing file is replaced.
        volume: real or complex tensor, 3D, in ``axis_order``.
        voxel_size_mm: voxel size along each volume axis, in the same order as ``volume``.
        complex_mode: ``"magnitude"`` (default), ``"real_imag"`` or ``"complex"``; see the
            module docstring.
        axis_order: ``"zyx"`` (default, blockrecon order) or ``"xyz"`` (NIfTI order).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: bad file suffix, volume, voxel size or option, or NaN/Inf in the volume
            (nothing is written).
    """
    path = Path(path)
    voxel_size_mm = tuple(float(v) for v in voxel_size_mm)
    _check_arguments(path, volume, voxel_size_mm, complex_mode, axis_order)
    array = volume.detach().cpu().numpy()
    if axis_order == "zyx":
        array, voxel_size_mm = array.transpose(2, 1, 0), voxel_size_mm[::-1]
    return _save(path, _voxel_values(array, complex_mode), voxel_size_mm)


def _save(
    path: Path, values: np.ndarray, voxel_size_xyz: Sequence[float], intent: str | None = None
) -> Path:
    """Write ``values`` (``(x, y, z, ...)``) with the geometry of the module docstring."""
    affine = nifti_affine(values.shape[:3], voxel_size_xyz)
    image = nib.Nifti1Image(values, affine)
    image.set_qform(affine, code=2)
    image.set_sform(affine, code=2)
    image.header.set_xyzt_units(xyz="mm")
    if intent is not None:
        image.header.set_intent(intent)
    with atomic_path(path) as temporary:
        nib.save(image, temporary)
    return path


def write_nifti_vector(
    path: str | os.PathLike[str], field: torch.Tensor, voxel_size_mm: Sequence[float]
) -> Path:
    """Write a vector field as a NIfTI-1 vector image, atomically.

    Stored as the standard ``(x, y, z, 1, 3)`` float32 array with intent ``vector``; the
    components are reordered with the axes, so that component 0 is along x, 1 along y, 2 along z.

    Args:
        path: ``.nii`` or ``.nii.gz`` file; its folder must exist.
        field: real ``(3, nz, ny, nx)`` tensor: the ``(z, y, x)`` components over a ``"zyx"``
            volume (blockrecon order).
        voxel_size_mm: voxel size along ``(z, y, x)``, mm.

    Raises:
        ValueError: bad suffix, shape or voxel size, or NaN/Inf (nothing is written).
    """
    path = Path(path)
    voxel_size_mm = tuple(float(v) for v in voxel_size_mm)
    if not isinstance(field, torch.Tensor) or field.ndim != 4 or field.shape[0] != 3:
        shape = tuple(field.shape) if isinstance(field, torch.Tensor) else type(field).__name__
        raise ValueError(f"field must be a (3, nz, ny, nx) tensor, got {shape}")
    _check_arguments(path, field[0], voxel_size_mm, "magnitude", "zyx")
    check_finite(field, "field")
    array = field.detach().cpu().numpy().astype(np.float32)
    values = array[::-1].transpose(3, 2, 1, 0)[:, :, :, None, :]  # (x, y, z, 1, (x, y, z))
    return _save(path, np.ascontiguousarray(values), voxel_size_mm[::-1], intent="vector")


def read_nifti_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D NIfTI file: (array float64 (x, y, slice), affine (4, 4)), validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        nii = nib.load(str(path))
        data = np.asarray(nii.dataobj, dtype=np.float64)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise ValueError(f"{path}: cannot read as NIfTI ({err})") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume (x, y, slice), got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: contains NaN or infinite values")
    return data, nii.affine
