"""Network predictions -> bubble positions, in the same point-table form as the ground truth.

Per frame, the cells of the fine occupancy map above ``threshold`` are grouped into connected
components (full connectivity: 8 neighbours in 2D, 26 in 3D). A component is one bubble at its
occupancy-weighted centroid, unless it holds several peaks: the networks are trained to paint
each bubble as a disc of radius :data:`~blockrecon.ulm.blocks.TARGET_RADIUS`, and at high
concentration the discs of nearby bubbles touch. Peaks are the local maxima, over a ball of that
radius, of the occupancy times the distance to the nearest empty cell; a component larger than
one disc with several peaks is split between them (each cell goes to its nearest peak) and gives
one bubble per part. Positions
are converted to lambda with the grid convention of :mod:`blockrecon.ulm.blocks`. Dense maps and
sparse ones (only their sites) decode alike.

With ``smoothing`` each frame's occupancy is first convolved with a Gaussian (sites a sparse
map does not hold count 0): the shipped 3D network spreads one bubble over fragments a few fine
cells apart, which decode as duplicates, and smoothing joins them. It also joins bubbles that
are truly that close, so it pays at low concentrations and costs at high ones (measured:
benchmarks/README.md, "The shipped ULM networks"). :class:`GatedSmoothing` therefore smooths
only the blocks where the unsmoothed decoding finds few bubbles, and where it finds fewer
still (a gate of its own) also merges the detections of one frame that lie closer than a
bubble's size (:func:`merge_close`): fragments farther apart than smoothing joins, which would
otherwise count as one true and one false positive, but also true neighbours, which are common
only at higher concentrations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.sparse import SparseTensor
from blockrecon.ulm._checks import check_per_axis
from blockrecon.ulm.blocks import TARGET_RADIUS, cell_centres


@dataclass(frozen=True)
class Detections:
    """Decoded bubbles: positions float32 (n, D) lambda, frames int64 (n,) (block-local plus the
    block's first frame), items int64 (n,) block index, masses float64 (n,) the summed
    occupancy of each bubble's cells; sorted by (item, frame)."""

    positions: torch.Tensor
    frames: torch.Tensor
    items: torch.Tensor
    masses: torch.Tensor


@dataclass(frozen=True)
class GatedSmoothing:
    """Smoothing of the 8x map where bubbles are sparse.

    A block whose unsmoothed decoding finds fewer than ``below`` detections per frame and input
    voxel (a density; no ground truth needed) is decoded again, with a Gaussian of standard
    deviation ``sigma`` (lambda) at occupancy ``threshold`` (the ``smoothing`` and
    ``threshold`` of :func:`decode_occupancy`; smoothed occupancy is lower, so is its
    threshold). In the smoothed blocks whose unsmoothed density is also below ``merge_below``
    (None: ``below``), detections closer than ``merge`` (lambda; 0: none) in one frame are
    merged (:func:`merge_close`). Chosen on simulations with their truth by
    :func:`blockrecon.ulm.evaluation.calibrate_smoothing`.
    """

    sigma: float
    threshold: float
    below: float
    merge: float = 0.0
    merge_below: float | None = None

    def __post_init__(self) -> None:
        check_positive(self.sigma, "smoothing sigma")
        check_positive(self.below, "smoothing density limit")
        if not 0 < self.threshold < 1:
            raise ValueError(f"smoothed threshold must be in (0, 1), got {self.threshold}")
        _check_merge_radius(self.merge)
        if self.merge_below is not None:
            check_positive(self.merge_below, "merge density limit")
            if self.merge_below > self.below:
                raise ValueError(
                    f"merge density limit {self.merge_below} exceeds the smoothing density "
                    f"limit {self.below}: only smoothed blocks are merged"
                )

    def applies(self, detections: int, sites: int) -> bool:
        """Whether a block of ``sites`` (frames x input voxels) in which the unsmoothed decoding
        found ``detections`` bubbles is decoded smoothed."""
        return detections < self.below * sites

    def merges(self, detections: int, sites: int) -> bool:
        """Whether such a block's smoothed detections are also merged."""
        limit = self.below if self.merge_below is None else self.merge_below
        return self.merge > 0 and detections < limit * sites

    def to_dict(self) -> dict[str, float | None]:
        return {
            "sigma": self.sigma,
            "threshold": self.threshold,
            "below": self.below,
            "merge": self.merge,
            "merge_below": self.merge_below,
        }


def _active_cells(logits, threshold: float) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(coords (m, 2 + D) of (item, frame, *cell), occupancy (m,), grid (T, *fine))."""
    if isinstance(logits, SparseTensor):
        if logits.num_channels != 1:
            raise ValueError(f"sparse logits must have 1 channel, got {logits.num_channels}")
        prob = torch.sigmoid(logits.feats[:, 0].detach())
        keep = prob > threshold
        return (
            logits.coords[keep].cpu().numpy(),
            prob[keep].cpu().double().numpy(),
            tuple(logits.spatial_shape),
        )
    if not isinstance(logits, torch.Tensor) or logits.ndim not in (4, 5):
        raise ValueError(
            "logits must be a SparseTensor or a tensor (B, T, *fine) with 2 or 3 spatial axes"
        )
    prob = torch.sigmoid(logits.detach())
    coords = (prob > threshold).nonzero()
    values = prob[tuple(coords.T)]
    return coords.cpu().numpy(), values.cpu().double().numpy(), tuple(logits.shape[1:])


def _ball(radius: np.ndarray) -> np.ndarray:
    """Boolean ellipsoid footprint with semi-axes ``radius`` (cells, per axis)."""
    half = np.ceil(radius).astype(int)
    grid = np.meshgrid(
        *[np.arange(-h, h + 1) / r for h, r in zip(half, radius, strict=True)], indexing="ij"
    )
    return sum(g**2 for g in grid) <= 1.0 + 1e-9


class _CellIndex:
    """Neighbour lookup in a set of distinct non-negative cells (m, D), by a sorted raster key
    (only the cells are stored: a frame's cells can span the whole fine grid, 256^3 at
    32^3 x 8). Offsets up to ``margin`` cells per axis."""

    def __init__(self, cells: np.ndarray, margin: int) -> None:
        self.cells, self.margin = cells, margin
        self.dims = cells.max(0) + 2 * margin + 1
        self.keys = np.ravel_multi_index(tuple((cells + margin).T), self.dims)
        self.order = np.argsort(self.keys)
        self.sorted = self.keys[self.order]
        self.strides = np.array([int(np.prod(self.dims[d + 1 :])) for d in range(cells.shape[1])])

    def neighbours(self, offset: np.ndarray) -> np.ndarray:
        """Index (m,) of the cell at ``offset`` from each cell; -1 where there is none."""
        target = self.sorted + int(offset @ self.strides)  # sorted queries: a fast search
        at = np.minimum(np.searchsorted(self.sorted, target), len(target) - 1)
        found = np.where(self.sorted[at] == target, self.order[at], -1)
        result = np.empty_like(found)
        result[self.order] = found
        return result

    def empty_neighbours(self) -> np.ndarray:
        """The distinct cells (k, D) outside the set that touch it (full connectivity; they
        may lie outside the grid, at -1)."""
        keys = [
            self.keys[self.neighbours(offset) < 0] + int(offset @ self.strides)
            for offset in _offsets(self.cells.shape[1], 1)
        ]
        shell = np.unravel_index(np.unique(np.concatenate(keys)), self.dims)
        return np.stack(shell, axis=1) - self.margin


def _offsets(ndim: int, half: int) -> np.ndarray:
    """The (2 half + 1)^ndim - 1 non-zero offsets (k, ndim) of a cube."""
    span = np.arange(-half, half + 1)
    grid = np.stack(np.meshgrid(*[span] * ndim, indexing="ij"), -1).reshape(-1, ndim)
    return grid[np.any(grid != 0, axis=1)]


def _components(cells: np.ndarray) -> np.ndarray:
    """Connected-component index (m,) of the cells (m, D) (distinct, non-negative), with full
    connectivity (8 neighbours in 2D, 26 in 3D), numbered as :func:`scipy.ndimage.label`
    numbers them minus one: in raster order of each component's first cell. Only the cells are
    visited."""
    index = _CellIndex(cells, 1)
    m = len(cells)
    rows, cols = [np.arange(m)], [np.arange(m)]
    offsets = _offsets(cells.shape[1], 1)
    for offset in offsets[len(offsets) // 2 :]:  # each pair once, from its lower cell
        neighbour = index.neighbours(offset)
        rows.append(np.flatnonzero(neighbour >= 0))
        cols.append(neighbour[neighbour >= 0])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, labels, index.keys)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[labels]


def _depth(index: _CellIndex, radius: np.ndarray) -> np.ndarray:
    """Distance (m,) of each cell to the nearest empty cell, in units of ``radius`` per axis
    (:func:`scipy.ndimage.distance_transform_edt` with sampling 1 / radius, evaluated at the
    cells only). The nearest empty cell touches the set: the cell one step from it towards
    the query is nearer, so it is in the set."""
    shell = index.empty_neighbours()
    _, nearest = cKDTree(shell / radius).query(index.cells / radius)
    delta = (shell[nearest] - index.cells) / radius
    return np.sqrt(sum(delta[:, d] ** 2 for d in range(delta.shape[1])))


def _peaks(
    group: np.ndarray, index: _CellIndex, prob: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of every component: ``(centres (k, D), component (k,))`` in raster order of their
    first cell. A peak is a plateau of local maxima, over a ball of ``radius`` cells within its
    component, of the distance to the nearest empty cell (the centres of touching discs, on
    either side of their neck) times the occupancy; its centre is the plateau's centroid."""
    score = _depth(index, radius) * prob
    top = np.ones(len(score), bool)
    ball = np.argwhere(_ball(radius)) - np.ceil(radius).astype(int)
    for offset in ball[np.any(ball != 0, axis=1)]:
        neighbour = index.neighbours(offset)
        near = np.flatnonzero(neighbour >= 0)
        near = near[group[neighbour[near]] == group[near]]
        top[near] &= score[near] >= score[neighbour[near]]
    cells = index.cells[top]
    plateau = _components(cells)
    size = np.bincount(plateau)
    centres = np.stack([np.bincount(plateau, weights=axis) / size for axis in cells.T], axis=1)
    component = np.empty(len(size), np.int64)
    component[plateau] = group[top]
    return centres, component


def _split_merged(
    group: np.ndarray, local: np.ndarray, prob: np.ndarray, radius: np.ndarray
) -> np.ndarray:
    """Bubble index of every cell (m, D): ``group`` (its component), with each component larger
    than one disc that holds several peaks split between them (each cell to its nearest peak;
    the parts numbered after the components, in component order)."""
    sizes = np.bincount(group)
    large = np.flatnonzero((sizes > _ball(radius).sum())[group])
    if not len(large):
        return group
    # the peaks of the large components only: the nearest cell outside a component is empty
    # (see _depth), so the other components change no distance
    index = _CellIndex(local[large], int(np.ceil(radius).max()))
    centres, component = _peaks(group[large], index, prob[large], radius)
    split = np.bincount(component, minlength=len(sizes)) > 1
    chosen = np.flatnonzero(split[component])
    chosen = chosen[np.argsort(component[chosen], kind="stable")]
    if not len(chosen):
        return group
    # components lifted apart along an extra axis: a cell's nearest peak is one of its own
    lift = 2.0 * np.sum((local.max(0) + 1) / radius) + 1.0
    tree = cKDTree(np.c_[centres[chosen] / radius, component[chosen] * lift])
    members = np.flatnonzero(split[group])
    nearest = _nearest_lowest(tree, np.c_[local[members] / radius, group[members] * lift])
    group = group.copy()
    group[members] = len(sizes) + nearest
    return group


def _nearest_lowest(tree: cKDTree, points: np.ndarray, ties: int = 4) -> np.ndarray:
    """Index (n,) of the nearest point of ``tree`` to each of ``points`` (n, k); of equally
    near ones (up to ``ties`` of them; cells and peak centres on a grid are often equidistant),
    the lowest."""
    k = min(ties, tree.n)
    distance, index = tree.query(points, k=k)
    distance, index = distance.reshape(len(points), k), index.reshape(len(points), k)
    tied = distance <= distance[:, :1] * (1 + 1e-12)
    return np.where(tied, index, tree.n).min(axis=1)


def _smoothed(
    cells: np.ndarray, prob: np.ndarray, sigma: np.ndarray, grid: Sequence[int], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cells (k, D) and occupancy (k,) above ``threshold`` of one frame's occupancy (the
    ``cells`` (m, D) of a ``grid``, zero elsewhere) convolved with a Gaussian of standard
    deviation ``sigma`` cells per axis (truncated at 3 sigma, zero outside the grid)."""
    margin = np.ceil(3 * sigma).astype(int)
    low = np.maximum(cells.min(0) - margin, 0)
    high = np.minimum(cells.max(0) + margin + 1, np.asarray(grid))
    box = np.zeros(tuple(high - low), np.float32)
    box[tuple((cells - low).T)] = prob
    box = ndimage.gaussian_filter(box, sigma, mode="constant", truncate=3.0)
    kept = np.argwhere(box > threshold)
    return kept + low, box[tuple(kept.T)].astype(np.float64)


def _frame_centroids(
    cells: np.ndarray, prob: np.ndarray, radius: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted centroids (k, D) and masses (k,) (summed occupancy) of the bubbles in the cells
    (m, D) of one frame: one per connected component, or per peak of a component with several
    (``radius``: peak separation in cells per axis; None: never split)."""
    low = cells.min(0)
    local = cells - low
    group = _components(local)
    if radius is not None:
        group = _split_merged(group, local, prob, radius)
    _, group = np.unique(group, return_inverse=True)
    weight = np.bincount(group, weights=prob)
    centres = [np.bincount(group, weights=prob * axis) / weight for axis in local.T]
    return np.stack(centres, axis=1) + low, weight


def decode_occupancy(
    logits,
    pixel_size: Sequence[float],
    scale: int = 8,
    threshold: float = 0.5,
    first_frames: torch.Tensor | None = None,
    split_radius: float | None = TARGET_RADIUS,
    smoothing: float | None = None,
) -> Detections:
    """Bubble positions from occupancy logits on a grid ``scale`` x finer than the input.

    Args:
        logits: dense (B, T, *fine) or sparse 1-channel logits on a (T, *fine) grid (the
            networks' output at ``scale``).
        pixel_size: input voxel size per spatial axis (lambda).
        scale: refinement of the logits' grid relative to the input grid.
        threshold: occupancy (probability) above which a cell is part of a bubble.
        first_frames: int64 (B,) frame offset of each block (default 0).
        split_radius: bubble disc radius (lambda) the network was trained with: a component
            with several peaks this far apart is split; None: one bubble per component.
        smoothing: standard deviation (lambda) of a Gaussian that each frame's occupancy is
            convolved with before ``threshold`` applies (see the module docstring; None: none).
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if split_radius is not None:
        check_positive(split_radius, "split_radius")
    if smoothing is not None:
        check_positive(smoothing, "smoothing")
    scale = check_positive_int(scale, "scale")
    # with smoothing every site counts: occupancy below the threshold adds to its neighbours'
    coords, prob, grid = _active_cells(logits, threshold if smoothing is None else 0.0)
    ndim = len(grid) - 1
    pixel_size = tuple(check_per_axis("pixel_size", pixel_size, ndim))
    batch = logits.batch_size if isinstance(logits, SparseTensor) else logits.shape[0]
    if first_frames is not None:
        first_frames = torch.as_tensor(first_frames, dtype=torch.int64)
        if tuple(first_frames.shape) != (batch,):
            raise ValueError(
                f"first_frames must have shape ({batch},) (one offset per block), "
                f"got {tuple(first_frames.shape)}"
            )
    cells_per_lambda = scale / np.asarray(pixel_size, dtype=np.float64)
    radius = None if split_radius is None else np.maximum(split_radius * cells_per_lambda, 1.0)
    sigma = None if smoothing is None else smoothing * cells_per_lambda
    positions, frames, items, masses = (
        [np.zeros((0, ndim))],
        [np.zeros(0, np.int64)],
        [np.zeros(0, np.int64)],
        [np.zeros(0)],
    )
    if len(coords):
        frame_ids = coords[:, 0] * grid[0] + coords[:, 1]
        order = np.argsort(frame_ids, kind="stable")
        coords, prob, frame_ids = coords[order], prob[order], frame_ids[order]
        starts = np.flatnonzero(np.r_[True, frame_ids[1:] != frame_ids[:-1], True])
        for lo, hi in zip(starts[:-1], starts[1:], strict=True):
            cells, occupancy = coords[lo:hi, 2:], prob[lo:hi]
            if sigma is not None:
                cells, occupancy = _smoothed(cells, occupancy, sigma, grid[1:], threshold)
                if not len(cells):
                    continue
            centres, mass = _frame_centroids(cells, occupancy, radius)
            positions.append(centres)
            masses.append(mass)
            frames.append(np.full(len(centres), coords[lo, 1]))
            items.append(np.full(len(centres), coords[lo, 0]))
    items = torch.from_numpy(np.concatenate(items))
    frames = torch.from_numpy(np.concatenate(frames))
    if first_frames is not None:
        frames = frames + first_frames[items]
    lam = cell_centres(torch.from_numpy(np.concatenate(positions)), pixel_size, scale)
    return Detections(
        lam.to(torch.float32), frames, items, torch.from_numpy(np.concatenate(masses))
    )


def _check_merge_radius(radius: float) -> None:
    if not (np.isfinite(radius) and radius >= 0):
        raise ValueError(f"merge radius must be >= 0 (lambda), got {radius}")


def merge_close(found: Detections, radius: float) -> Detections:
    """``found`` with the detections of each (item, frame) closer than ``radius`` (lambda; 0:
    none) merged: the heaviest detection not yet merged takes every unmerged one within
    ``radius`` of it, and they become one bubble at their mass-weighted centroid, of their
    summed mass."""
    _check_merge_radius(radius)
    n = len(found.frames)
    if n < 2 or radius == 0:
        return found
    positions = found.positions.double().numpy()
    mass = found.masses.numpy()
    group = (found.items * (int(found.frames.max()) + 1) + found.frames).numpy()
    # groups lifted apart along an extra axis: no pair of two groups is within ``radius``
    lifted = np.c_[positions, group * (2.0 * radius + 1.0)]
    neighbours = cKDTree(lifted).query_ball_point(lifted, radius)
    owner = np.full(n, -1)
    for i in np.argsort(-mass, kind="stable"):
        if owner[i] < 0:
            members = np.asarray(neighbours[i])
            owner[members[owner[members] < 0]] = i
    roots, owner = np.unique(owner, return_inverse=True)
    total = np.bincount(owner, weights=mass)
    centres = np.stack(
        [np.bincount(owner, weights=mass * axis) / total for axis in positions.T], axis=1
    )
    return Detections(
        torch.from_numpy(centres).to(torch.float32),
        found.frames[roots],
        found.items[roots],
        torch.from_numpy(total),
    )
