"""Dense IQ blocks to sparse inputs: which voxels to keep, and what keeping them loses.

A ULM block ``(frames, *spatial)`` is mostly noise; a sparse network sees only the voxels kept
by a selector (both apply :func:`blockrecon.sparse.select.select_sites` to ``|iq|^2``):

- :func:`threshold_mask`: ``|iq|^2 / max|iq|^2 > threshold``, the maximum taken over the whole
  block (``normalization="block"``) or over each frame (``"frame"``);
- :func:`topk_mask`: the ``k`` voxels of largest ``|iq|^2`` in every frame, or in every spatial
  tile of ``block_shape`` of every frame.

:func:`to_sparse` turns IQ plus a mask into a :class:`blockrecon.sparse.SparseTensor` with the
frame axis as the first grid axis (2D + time -> 3 grid axes, 3D + time -> 4) and two feature
channels (real, imaginary). :func:`bubble_retention` measures the trade-off: the fraction of
true bubbles whose neighbourhood survives against the fraction of voxels kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from blockrecon.checks import check_positive
from blockrecon.sparse.select import select_sites
from blockrecon.ulm._checks import check_iq, check_per_axis, check_points

NORMALIZATIONS = ("block", "frame")


def threshold_mask(
    iq: torch.Tensor, threshold: float = 0.003, normalization: str = "block"
) -> torch.Tensor:
    """Keep voxels whose normalized power ``|iq|^2 / max|iq|^2`` exceeds ``threshold``.

    Args:
        iq: complex ``(frames, *spatial)``.
        threshold: in ``[0, 1)``; the default 0.003 keeps > 97% of the bubbles at 40 per frame
            in 16^3 and 32^2 blocks (``benchmarks/bench_ulm_sparsify.py``), 0.25 under 12%.
        normalization: ``"block"`` (one maximum for the whole block) or ``"frame"``.

    Returns:
        bool ``(frames, *spatial)``.
    """
    power = np.abs(check_iq(iq)) ** 2
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    group_ndim = power.ndim if normalization == "block" else power.ndim - 1
    return select_sites(
        torch.from_numpy(power), threshold=threshold, group_ndim=group_ndim, relative=True
    )


def _tiles(power: np.ndarray, block_shape: tuple[int, ...]) -> np.ndarray:
    """``(frames, *tiles, prod(block_shape))`` view of ``power`` cut into spatial tiles."""
    spatial = power.shape[1:]
    split = [power.shape[0]]
    for size, tile in zip(spatial, block_shape, strict=True):
        split += [size // tile, tile]
    ndim = len(spatial)
    order = [0] + [1 + 2 * d for d in range(ndim)] + [2 + 2 * d for d in range(ndim)]
    tiles = power.reshape(split).transpose(order)
    return tiles.reshape(tiles.shape[: 1 + ndim] + (-1,))


def topk_mask(iq: torch.Tensor, k: int, block_shape: Sequence[int] | None = None) -> torch.Tensor:
    """Keep the ``k`` voxels of largest ``|iq|^2`` in every frame (``block_shape=None``) or in
    every spatial tile of ``block_shape`` voxels of every frame (the grid must divide into
    tiles). Ties are broken towards the lowest index.

    Returns:
        bool ``(frames, *spatial)``.
    """
    power = np.abs(check_iq(iq)) ** 2
    spatial = power.shape[1:]
    tile = tuple(spatial) if block_shape is None else tuple(int(b) for b in block_shape)
    if len(tile) != len(spatial) or any(b < 1 or s % b for s, b in zip(spatial, tile, strict=True)):
        raise ValueError(
            f"block_shape {block_shape} must have {len(spatial)} positive sizes "
            f"dividing the grid {spatial}"
        )
    per_tile = int(np.prod(tile))
    if int(k) != k or not 1 <= k <= per_tile:
        raise ValueError(f"k must be an int in [1, {per_tile}], got {k}")
    kept_tiles = select_sites(
        torch.from_numpy(_tiles(power, tile)), topk=int(k), group_ndim=1
    ).numpy()
    ndim = len(spatial)
    inverse = [0] + [x for d in range(ndim) for x in (1 + d, 1 + ndim + d)]
    shaped = kept_tiles.reshape(kept_tiles.shape[: 1 + ndim] + tile).transpose(inverse)
    return torch.from_numpy(shaped.reshape(power.shape).copy())


def to_sparse(iq: torch.Tensor, mask: torch.Tensor):
    """The kept voxels of ``iq`` as a :class:`blockrecon.sparse.SparseTensor`.

    Args:
        iq: complex ``(frames, *spatial)``.
        mask: bool ``(frames, *spatial)``.

    Returns:
        SparseTensor of batch size 1, grid ``(frames, *spatial)``, 2 float32 channels (real,
        imaginary).
    """
    from blockrecon.sparse.tensor import SparseTensor

    check_iq(iq)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != iq.shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(iq.shape)}")
    channels = torch.view_as_real(iq.to(torch.complex64)).movedim(-1, 0)
    return SparseTensor.from_dense(channels[None], mask=mask[None])


@dataclass(frozen=True)
class Retention:
    """What a sparsifying mask keeps.

    Attributes:
        bubbles_kept: fraction of true bubble positions with a kept voxel in their neighbourhood.
        voxels_kept: fraction of all voxels kept.
    """

    bubbles_kept: float
    voxels_kept: float


def bubble_retention(
    mask: torch.Tensor,
    positions: torch.Tensor,
    frames: torch.Tensor,
    pixel_size: float | Sequence[float],
    radius: float | None = None,
) -> Retention:
    """Fraction of bubbles whose neighbourhood survives the mask, and fraction of voxels kept.

    Args:
        mask: bool ``(frames, *spatial)``.
        positions: float ``(n, ndim)`` true bubble positions, lambda.
        frames: int ``(n,)`` frame of each position.
        pixel_size: voxel size in lambda, one value or one per axis.
        radius: ``None``: a bubble survives if the voxel nearest to it is kept; otherwise if any
            voxel whose centre lies within ``radius`` lambda of it is kept.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim not in (3, 4):
        raise ValueError("mask must be a bool tensor (frames, *spatial) with 2 or 3 spatial axes")
    keep = mask.numpy()
    ndim = keep.ndim - 1
    pos, frm = check_points(positions, frames, ndim)
    pixel = check_per_axis("pixel_size", pixel_size, ndim)
    if np.any(frm >= keep.shape[0]):
        raise ValueError(f"frames of positions exceed the mask's {keep.shape[0]} frames")
    if radius is not None:
        check_positive(radius, "radius")
    reach = (
        np.zeros(ndim, dtype=np.int64)
        if radius is None
        else np.floor(radius / pixel + 0.5).astype(np.int64)
    )
    nearest = np.rint(pos / pixel).astype(np.int64)
    survived = np.zeros(len(pos), dtype=bool)
    offsets = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1
    ).reshape(-1, ndim)
    for offset in offsets:
        voxel = nearest + offset
        inside = np.all((voxel >= 0) & (voxel < keep.shape[1:]), axis=1)
        if radius is not None:
            inside &= np.linalg.norm(voxel * pixel - pos, axis=1) <= radius
        hit = np.zeros(len(pos), dtype=bool)
        hit[inside] = keep[(frm[inside], *voxel[inside].T)]
        survived |= hit
    bubbles = float(survived.mean()) if len(pos) else float("nan")
    return Retention(bubbles_kept=bubbles, voxels_kept=float(keep.mean()))
