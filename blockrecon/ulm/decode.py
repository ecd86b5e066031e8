"""Network predictions -> bubble positions, in the same point-table form as the ground truth.

Per frame, the cells of the fine occupancy map above ``threshold`` are grouped into connected
components (full connectivity: 8 neighbours in 2D, 26 in 3D); each component gives one bubble at
its occupancy-weighted centroid, converted to lambda with the grid convention of
:mod:`blockrecon.ulm.blocks`. Dense maps and sparse ones (only their sites) decode alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from blockrecon.sparse import SparseTensor
from blockrecon.ulm.blocks import cell_centres


@dataclass(frozen=True)
class Detections:
    """Decoded bubbles: positions float32 (n, D) lambda, frames int64 (n,) (block-local plus the
    block's first frame), items int64 (n,) block index, sorted by (item, frame)."""

    positions: torch.Tensor
    frames: torch.Tensor
    items: torch.Tensor


def _active_cells(logits, threshold: float) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(coords (m, 2 + D) of (item, frame, *cell), occupancy (m,), grid (T, *fine))."""
    if isinstance(logits, SparseTensor):
        if logits.num_channels != 1:
            raise ValueError(f"sparse logits must have 1 channel, got {logits.num_channels}")
        prob = torch.sigmoid(logits.feats[:, 0].detach())
        keep = prob > threshold
        return (logits.coords[keep].cpu().numpy(), prob[keep].cpu().double().numpy(),
                tuple(logits.spatial_shape))
    if not isinstance(logits, torch.Tensor) or logits.ndim not in (4, 5):
        raise ValueError("logits must be a SparseTensor or a tensor (B, T, *fine) with 2 or 3 "
                         "spatial axes")
    prob = torch.sigmoid(logits.detach())
    coords = (prob > threshold).nonzero()
    values = prob[tuple(coords.T)]
    return coords.cpu().numpy(), values.cpu().double().numpy(), tuple(logits.shape[1:])


def _frame_centroids(cells: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Weighted centroids (k, D) of the connected components of the cells (m, D) of one frame."""
    low = cells.min(0)
    box = np.zeros(tuple(cells.max(0) - low + 1))
    box[tuple((cells - low).T)] = prob
    labels, count = ndimage.label(box > 0, ndimage.generate_binary_structure(box.ndim, box.ndim))
    centres = ndimage.center_of_mass(box, labels, np.arange(1, count + 1))
    return np.asarray(centres, dtype=np.float64).reshape(count, box.ndim) + low


def decode_occupancy(logits, pixel_size: Sequence[float], scale: int = 8,
                     threshold: float = 0.5, first_frames: torch.Tensor | None = None
                     ) -> Detections:
    """Bubble positions from occupancy logits on a grid ``scale`` x finer than the input.

    Args:
        logits: dense (B, T, *fine) or sparse 1-channel logits on a (T, *fine) grid (the
            networks' output at ``scale``).
        pixel_size: input voxel size per spatial axis (lambda).
        scale: refinement of the logits' grid relative to the input grid.
        threshold: occupancy (probability) above which a cell is part of a bubble.
        first_frames: int64 (B,) frame offset of each block (default 0).
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    coords, prob, grid = _active_cells(logits, threshold)
    ndim = len(grid) - 1
    if len(pixel_size) != ndim:
        raise ValueError(f"pixel_size needs {ndim} values, got {len(pixel_size)}")
    positions, frames, items = [np.zeros((0, ndim))], [np.zeros(0, np.int64)], [
        np.zeros(0, np.int64)]
    if len(coords):
        frame_ids = coords[:, 0] * grid[0] + coords[:, 1]
        order = np.argsort(frame_ids, kind="stable")
        coords, prob, frame_ids = coords[order], prob[order], frame_ids[order]
        starts = np.flatnonzero(np.r_[True, frame_ids[1:] != frame_ids[:-1], True])
        for lo, hi in zip(starts[:-1], starts[1:], strict=True):
            centres = _frame_centroids(coords[lo:hi, 2:], prob[lo:hi])
            positions.append(centres)
            frames.append(np.full(len(centres), coords[lo, 1]))
            items.append(np.full(len(centres), coords[lo, 0]))
    items = torch.from_numpy(np.concatenate(items))
    frames = torch.from_numpy(np.concatenate(frames))
    if first_frames is not None:
        frames = frames + torch.as_tensor(first_frames, dtype=torch.int64)[items]
    lam = cell_centres(torch.from_numpy(np.concatenate(positions)), pixel_size, scale)
    return Detections(lam.to(torch.float32), frames, items)
