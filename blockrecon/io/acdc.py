"""ACDC-style NIfTI pairs for segmentation: ``<name>.nii.gz`` (3D short-axis stack) and
``<name>_gt.nii.gz``, and label volumes written back in the same layout.

Arrays are stored (x, y, slice); they are returned slice-major as 2D images. Everything read is
validated: 3D, finite image, label file of the same shape holding only the values 0..3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from blockrecon.atomic import atomic_write
from blockrecon.io.nifti import read_nifti_volume
from blockrecon.seg.data.synthetic import NUM_CLASSES

_SUFFIXES = (".nii.gz", ".nii")


def _stem(path: Path) -> tuple[str, str]:
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)], suffix
    raise ValueError(f"{path}: not a NIfTI file name (expected {' or '.join(_SUFFIXES)})")


def label_path_for(image_path: str | Path) -> Path:
    """The ``_gt`` label file that belongs to an image file."""
    image_path = Path(image_path)
    stem, suffix = _stem(image_path)
    return image_path.with_name(f"{stem}_gt{suffix}")


def _labels_from(data: np.ndarray, path: Path) -> np.ndarray:
    if not np.array_equal(data, np.round(data)):
        raise ValueError(f"{path}: label values must be integers")
    bad = np.setdiff1d(np.unique(data), np.arange(NUM_CLASSES))
    if bad.size:
        raise ValueError(
            f"{path}: label values must be in 0..{NUM_CLASSES - 1}, found {bad[:5].tolist()}"
        )
    return data.astype(np.int64)


def load_acdc_pair(
    image_path: str | Path,
    label_path: str | Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an image stack and its labels.

    Args:
        image_path: ``<name>.nii.gz`` holding a 3D (x, y, slice) stack.
        label_path: the labels; default ``<name>_gt.nii.gz`` beside the image.

    Returns:
        images float32 (slices, 1, x, y); labels int64 (slices, x, y) in 0..3.
    """
    image_path = Path(image_path)
    label_path = label_path_for(image_path) if label_path is None else Path(label_path)
    image, _ = read_nifti_volume(image_path)
    label, _ = read_nifti_volume(label_path)
    if image.shape != label.shape:
        raise ValueError(
            f"{label_path}: shape {label.shape} does not match the image "
            f"{image_path.name} shape {image.shape}"
        )
    labels = _labels_from(label, label_path)
    images = torch.from_numpy(image.transpose(2, 0, 1)[:, None].astype(np.float32))
    return images, torch.from_numpy(labels.transpose(2, 0, 1).copy())


def find_acdc_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """All (image, ``_gt`` label) pairs below ``folder``, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    pairs = []
    for suffix in _SUFFIXES:
        for gt in sorted(folder.rglob(f"*_gt{suffix}")):
            image = gt.with_name(gt.name.replace(f"_gt{suffix}", suffix))
            if image.is_file():
                pairs.append((image, gt))
    if not pairs:
        raise ValueError(f"{folder}: no <name>.nii.gz / <name>_gt.nii.gz pairs found")
    return sorted(pairs)


def center_crop_or_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crop or zero-pad the last two dimensions of ``x`` to ``size`` x ``size``, centred."""
    for axis in (-2, -1):
        n = x.shape[axis]
        if n > size:
            x = x.narrow(axis, (n - size) // 2, size)
        elif n < size:
            pad = [0, 0, 0, 0]
            before = (size - n) // 2
            pad[2 * (-1 - axis) : 2 * (-1 - axis) + 2] = [before, size - n - before]
            x = torch.nn.functional.pad(x, pad)
    return x


def load_acdc_folder(
    folder: str | Path,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every slice of every pair below ``folder``, stacked.

    Args:
        folder: searched recursively for ``*_gt.nii.gz`` files and their images.
        size: centre-crop or pad every slice to ``size`` x ``size``; required when the
            volumes differ in-plane.

    Returns:
        images float32 (N, 1, H, W); labels int64 (N, H, W).
    """
    loaded = [load_acdc_pair(image, gt) for image, gt in find_acdc_pairs(folder)]
    if size is not None:
        loaded = [(center_crop_or_pad(x, size), center_crop_or_pad(y, size)) for x, y in loaded]
    shapes = {tuple(x.shape[2:]) for x, _ in loaded}
    if len(shapes) > 1:
        raise ValueError(
            f"{folder}: volumes differ in-plane {sorted(shapes)}; pass a size to "
            "crop or pad them to a common size"
        )
    return torch.cat([x for x, _ in loaded]), torch.cat([y for _, y in loaded])


def save_label_volume(labels: torch.Tensor, affine: np.ndarray, path: str | Path) -> Path:
    """Write int labels (slices, x, y) as a uint8 (x, y, slice) NIfTI file, atomically."""
    import nibabel as nib

    path = Path(path)
    _stem(path)  # validates the NIfTI suffix
    data = labels.cpu().numpy().transpose(1, 2, 0).astype(np.uint8)
    return atomic_write(path, lambda tmp: nib.save(nib.Nifti1Image(data, affine), tmp))
