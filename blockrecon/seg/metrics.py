"""Segmentation metrics: Dice per class and the 95th-percentile Hausdorff distance (HD95)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} does not match target shape "
            f"{tuple(target.shape)}"
        )
    if pred.dtype.is_floating_point or target.dtype.is_floating_point:
        raise ValueError("prediction and target must be integer label maps")


def dice_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice 2|P∩T|/(|P|+|T|) of classes 1..num_classes-1 over all pixels given.

    Args:
        pred, target: integer label maps of the same shape (any number of dimensions).
        num_classes: number of classes including background 0.

    Returns:
        float64 (num_classes - 1,); a class absent from both maps scores 1.
    """
    _check_pair(pred, target)
    scores = []
    for k in range(1, num_classes):
        p, t = pred == k, target == k
        total = int(p.sum() + t.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((p & t).sum()) / total)
    return torch.tensor(scores, dtype=torch.float64)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hausdorff95(
    pred: torch.Tensor, target: torch.Tensor, spacing: Sequence[float] | None = None
) -> float:
    """95th percentile of the symmetric surface distances between two binary masks.

    Both directed sets of distances (each surface pixel of one mask to the nearest surface
    pixel of the other) are pooled before the percentile, as in MedPy's ``hd95``.

    Args:
        pred, target: boolean masks of the same shape.
        spacing: pixel size per dimension (default 1): the result is in these units.

    Returns:
        the distance; 0 when both masks are empty, inf when exactly one is.
    """
    if pred.shape != target.shape:
        raise ValueError(f"mask shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}")
    a, b = pred.bool().cpu().numpy(), target.bool().cpu().numpy()
    if spacing is not None and len(spacing) != a.ndim:
        raise ValueError(f"spacing needs {a.ndim} values, got {len(spacing)}")
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    sa, sb = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return float(np.percentile(np.concatenate([to_b, to_a]), 95))


def evaluate_labels(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
) -> dict[str, list[float]]:
    """Mean over images of Dice and HD95 per class 1..num_classes-1.

    Args:
        pred, target: int64 (N, H, W) label maps; each image is scored on its own.

    Returns:
        ``{"dice": [...], "hd95": [...]}``, one value per class; HD95 averages over the images
        where both maps contain the class (NaN if none does).
    """
    _check_pair(pred, target)
    if pred.dim() != 3:
        raise ValueError(f"expected (N, H, W) label maps, got shape {tuple(pred.shape)}")
    dice = torch.stack(
        [dice_per_class(p, t, num_classes) for p, t in zip(pred, target, strict=True)]
    )
    hd = []
    for k in range(1, num_classes):
        values = [
            hausdorff95(p == k, t == k)
            for p, t in zip(pred, target, strict=True)
            if (p == k).any() and (t == k).any()
        ]
        hd.append(float(np.mean(values)) if values else float("nan"))
    return {"dice": dice.mean(dim=0).tolist(), "hd95": hd}
