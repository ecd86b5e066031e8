"""Network inputs and targets cut from ULM acquisitions.

Grid convention (shared by targets and decoding): input voxel ``i`` along axis ``d`` is centred
at ``i * pixel_size[d]`` lambda and covers ``[i - 1/2, i + 1/2)`` pixels; on a grid ``scale``
times finer, cell ``j`` covers ``[(j / scale) - 1/2, ((j + 1) / scale) - 1/2)`` pixels, i.e. the
children of voxel ``i`` under transposed convolutions of stride 2 are ``scale * i + o``.

Targets are occupancy maps: a cell is 1 when a bubble lies in it or, with a target ``radius``,
when its centre lies within ``radius`` lambda of a bubble (on the finest grid; coarser grids hold
the cells containing those, so targets are nested). The default radius of the training blocks,
lambda/8 (half the PALA true-positive distance), makes a bubble a small disc on the 8x grid
(about 13 cells in 2D) instead of one 1/16-pixel cell whose exact position the noise makes
unpredictable; the decoder takes the disc's centroid. They are held as sorted int64
linear keys of the occupied cells of the ``(B, T, *(scale * S))`` grid (one set per scale), so
an 8x-finer 3D+t target costs a few bytes per bubble instead of a dense grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from blockrecon.checks import check_positive_int
from blockrecon.sparse.tensor import decode_keys, linear_keys
from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.localize import noise_median

#: Target radius (lambda) of :func:`acquisition_blocks`: lambda/8.
TARGET_RADIUS = 0.125
#: :func:`iq_channels`: a block's scale is at least :data:`SCALE_FLOOR` times this quantile
#: of the acquisition's frame maxima (a frame with a bright bubble).
REFERENCE_QUANTILE = 0.9
SCALE_FLOOR = 0.5
#: :func:`iq_channels`: a block's scale is also at least :data:`NOISE_FLOOR` times the noise's
#: median magnitude, so that the input sparsifier's default threshold (|x|^2 > 0.01, i.e.
#: |x| > 0.1) keeps about 1 % of pure complex Gaussian noise: exp(-ln 2 (2.6)^2) = 0.9 %.
#: Simulations with bubbles (SNR 30 dB, 2-256 bubbles/frame in 2D, 2-1214 in 3D) measure
#: 36-260 times the noise median; pure noise 3-4.
NOISE_FLOOR = 26.0


def cell_indices(positions: torch.Tensor, pixel_size: Sequence[float], scale: int) -> torch.Tensor:
    """int64 (n, D) fine-grid cells of positions (n, D) in lambda, on a grid ``scale`` x finer."""
    pixel = torch.as_tensor(pixel_size, dtype=torch.float64)
    return torch.floor((positions.double() / pixel + 0.5) * scale).to(torch.int64)


def cell_centres(cells: torch.Tensor, pixel_size: Sequence[float], scale: int) -> torch.Tensor:
    """float64 (n, D) positions (lambda) of (possibly fractional) fine-grid cell coordinates."""
    pixel = torch.as_tensor(pixel_size, dtype=torch.float64)
    return ((cells.double() + 0.5) / scale - 0.5) * pixel


@dataclass(frozen=True)
class OccupancyTargets:
    """Occupied cells of a batch of blocks at each scale.

    Attributes:
        grid: block grid (T, *S) at scale 1.
        batch_size: number of blocks B.
        keys: {scale: sorted unique int64 keys of the occupied cells of (B, T, *(scale * S))}.
    """

    grid: tuple[int, ...]
    batch_size: int
    keys: dict[int, torch.Tensor]

    def shape(self, scale: int) -> tuple[int, ...]:
        """Dense target shape (B, T, *(scale * S))."""
        return (self.batch_size, self.grid[0], *(scale * s for s in self.grid[1:]))

    def dense(self, scale: int) -> torch.Tensor:
        """Dense float32 occupancy (B, T, *(scale * S)) (small grids only)."""
        flat = torch.zeros(int(np.prod(self.shape(scale))))
        flat[self.keys[scale]] = 1.0
        return flat.reshape(self.shape(scale))

    def dilated(self, margin: int, scales: Sequence[int] | None = None) -> dict[int, torch.Tensor]:
        """Keys {scale: sorted unique int64} of the occupied cells and of every cell within
        ``margin`` cells of one along each spatial axis (same frame; a (2 margin + 1)^D
        neighbourhood, clipped to the grid), for ``scales`` (default all). ``margin=0``: the
        :attr:`keys` themselves."""
        margin = check_positive_int(margin, "margin", allow_zero=True)
        scales = list(self.keys) if scales is None else list(scales)
        if margin == 0:
            return {s: self.keys[s] for s in scales}
        out = {}
        for scale in scales:
            keys = self.keys[scale]
            shape = torch.tensor(self.shape(scale))
            coords = decode_keys(keys, tuple(shape.tolist())[1:])
            d = len(self.grid) - 1
            span = torch.arange(-margin, margin + 1)
            offsets = torch.stack(
                [g.reshape(-1) for g in torch.meshgrid(*[span] * d, indexing="ij")], dim=1
            )
            moved = coords[:, None, :].repeat(1, len(offsets), 1)
            moved[..., 2:] += offsets
            moved = moved.reshape(-1, coords.shape[1])
            moved = moved[((moved[:, 2:] >= 0) & (moved[:, 2:] < shape[2:])).all(1)]
            out[scale] = torch.unique(linear_keys(moved, tuple(shape.tolist())[1:]), sorted=True)
        return out

    def select(self, items: Sequence[int]) -> OccupancyTargets:
        """Targets of the blocks ``items`` (renumbered 0..len-1)."""
        keys = {}
        for scale, k in self.keys.items():
            per_item = int(np.prod(self.shape(scale)[1:]))
            # keys are sorted: item i's are the run in [i * per_item, (i + 1) * per_item)
            starts = torch.tensor(
                [[i * per_item, (i + 1) * per_item] for i in items], dtype=k.dtype
            )
            bounds = torch.searchsorted(k, starts.reshape(-1).to(k.device)).tolist()
            parts = [
                k[bounds[2 * n] : bounds[2 * n + 1]] + (n - i) * per_item
                for n, i in enumerate(items)
            ]
            keys[scale] = torch.cat(parts) if parts else k[:0]
        return OccupancyTargets(self.grid, len(items), keys)


def _disc_cells(
    positions: torch.Tensor, pixel_size: Sequence[float], scale: int, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cells (m, D), point index (m,)): each point's own cell plus the cells whose centres lie
    within ``radius`` lambda of it."""
    own = cell_indices(positions, pixel_size, scale)
    reach = [int(np.ceil(radius * scale / p)) for p in pixel_size]
    if not any(reach):
        return own, torch.arange(len(own))
    grids = torch.meshgrid(*[torch.arange(-r, r + 1) for r in reach], indexing="ij")
    cells, index = [], []
    for offset in torch.stack([g.reshape(-1) for g in grids], dim=1):
        cell = own + offset
        near = (cell_centres(cell, pixel_size, scale) - positions.double()).norm(dim=1) <= radius
        near |= not offset.any()
        cells.append(cell[near])
        index.append(near.nonzero().squeeze(1))
    return torch.cat(cells), torch.cat(index)


def occupancy_targets(
    positions: torch.Tensor,
    frames: torch.Tensor,
    items: torch.Tensor,
    grid: Sequence[int],
    batch_size: int,
    pixel_size: Sequence[float],
    scales: Sequence[int] = (1, 2, 4, 8),
    radius: float = 0.0,
) -> OccupancyTargets:
    """Targets from a point table: positions (n, D) lambda, block-local frames (n,) and block
    index (n,) of each point. Points outside the grid are ignored.

    On the finest scale a point occupies its own cell and the cells whose centres lie within
    ``radius`` lambda of it (>= 0); on every coarser scale, the cells containing those (the
    scales must each divide the finest one). The targets are nested: an occupied cell's parent is
    occupied, so a sparse network that keeps the occupied cells reaches every finer one. With
    ``radius=0`` every scale holds just the point's own cell.
    """
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    finest = max(scales)
    if any(finest % s for s in scales):
        raise ValueError(f"scales {tuple(scales)} must divide the finest one")
    grid = tuple(int(g) for g in grid)
    cells, index = _disc_cells(positions, pixel_size, finest, radius)
    keys = {}
    for scale in scales:
        shape = torch.tensor([batch_size, grid[0], *(scale * s for s in grid[1:])])
        coords = torch.cat(
            [
                items[index, None],
                frames[index, None],
                torch.div(cells, finest // scale, rounding_mode="floor"),
            ],
            dim=1,
        )
        inside = ((coords >= 0) & (coords < shape)).all(1)
        coords = coords[inside]
        flat = coords[:, 0]
        for i in range(1, coords.shape[1]):
            flat = flat * shape[i] + coords[:, i]
        keys[scale] = torch.unique(flat, sorted=True)
    return OccupancyTargets(grid, batch_size, keys)


def iq_channels(
    iq: torch.Tensor, scale_floor: float = SCALE_FLOOR, noise_floor: float = NOISE_FLOOR
) -> torch.Tensor:
    """Complex blocks (B, T, *S) of one acquisition -> float32 (B, 2, T, *S) (real, imag).

    Each block is divided by its scale: the mean over its frames of the frame's largest
    magnitude (a typical bright bubble ~ 1), but at least ``scale_floor`` times the
    :data:`REFERENCE_QUANTILE` quantile of the frame maxima of all the blocks, and at least
    ``noise_floor`` times the noise's median magnitude
    (:func:`blockrecon.ulm.localize.noise_median` of all the blocks). Without the floors a
    block with no bubble (a pause in a sparse acquisition, or a whole acquisition before the
    bolus) would be scaled until its noise peaks reach 1, and the sparse network would take
    its noise for bubbles; 0 disables a floor.
    """
    if not isinstance(iq, torch.Tensor) or not iq.is_complex() or iq.ndim not in (4, 5):
        raise ValueError("iq must be a complex tensor (B, T, *S) with 2 or 3 spatial axes")
    if not 0 <= scale_floor <= 1:
        raise ValueError(f"scale_floor must be in [0, 1], got {scale_floor}")
    if not 0 <= noise_floor < float("inf"):
        raise ValueError(f"noise_floor must be finite and >= 0, got {noise_floor}")
    magnitude = iq.abs()
    frame_max = magnitude.flatten(2).amax(2)  # (B, T)
    reference = torch.quantile(frame_max.flatten().double(), REFERENCE_QUANTILE)
    floor = max(scale_floor * float(reference), noise_floor * float(noise_median(magnitude)))
    scale = frame_max.mean(1).clamp(min=floor)  # (B,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    iq = iq / scale.reshape(-1, *(1,) * (iq.ndim - 1))
    return torch.stack([iq.real, iq.imag], dim=1).to(torch.float32)


@dataclass(frozen=True)
class UlmBlocks:
    """Network inputs and targets cut from an acquisition.

    Attributes:
        inputs: float32 (B, 2, T, *S), see :func:`iq_channels`.
        targets: :class:`OccupancyTargets` of the blocks.
        first_frames: int64 (B,) acquisition frame of each block's frame 0.
        pixel_size: voxel size (lambda).
    """

    inputs: torch.Tensor
    targets: OccupancyTargets
    first_frames: torch.Tensor
    pixel_size: tuple[float, ...]


def acquisition_blocks(
    acquisition: UlmAcquisition,
    frames_per_block: int,
    scales: Sequence[int] = (1, 2, 4, 8),
    radius: float = TARGET_RADIUS,
) -> UlmBlocks:
    """Cut the acquisition into consecutive blocks of ``frames_per_block`` frames (the tail that
    does not fill a block is dropped), with their occupancy targets (target ``radius`` in
    lambda, see :func:`occupancy_targets`)."""
    if not isinstance(acquisition, UlmAcquisition):
        raise ValueError("acquisition must be a UlmAcquisition")
    frames_per_block = check_positive_int(frames_per_block, "frames_per_block")
    n_blocks = acquisition.n_frames // frames_per_block
    if n_blocks < 1:
        raise ValueError(
            f"frames_per_block must be in [1, {acquisition.n_frames}] "
            f"(the acquisition's frames), got {frames_per_block}"
        )
    used = n_blocks * frames_per_block
    iq = acquisition.iq[:used].reshape(n_blocks, frames_per_block, *acquisition.spatial_shape)
    keep = acquisition.frames < used
    frames = acquisition.frames[keep]
    targets = occupancy_targets(
        acquisition.positions[keep],
        frames % frames_per_block,
        frames // frames_per_block,
        (frames_per_block, *acquisition.spatial_shape),
        n_blocks,
        acquisition.pixel_size,
        scales,
        radius,
    )
    first = torch.arange(n_blocks, dtype=torch.int64) * frames_per_block
    return UlmBlocks(iq_channels(iq), targets, first, tuple(acquisition.pixel_size))


def concat_blocks(parts: Sequence[UlmBlocks]) -> UlmBlocks:
    """Blocks of several acquisitions as one set (same block grid and pixel size required)."""
    parts = list(parts)
    if not parts:
        raise ValueError("no blocks to concatenate")
    first = parts[0]
    for part in parts[1:]:
        if (part.targets.grid, part.pixel_size, tuple(part.targets.keys)) != (
            first.targets.grid,
            first.pixel_size,
            tuple(first.targets.keys),
        ):
            raise ValueError("blocks differ in grid, pixel size or scales")
    keys, offset = {s: [] for s in first.targets.keys}, 0
    for part in parts:
        for s, k in part.targets.keys.items():
            keys[s].append(k + offset * int(np.prod(part.targets.shape(s)[1:])))
        offset += part.targets.batch_size
    targets = OccupancyTargets(
        first.targets.grid, offset, {s: torch.cat(k) for s, k in keys.items()}
    )
    return UlmBlocks(
        torch.cat([p.inputs for p in parts]),
        targets,
        torch.cat([p.first_frames for p in parts]),
        first.pixel_size,
    )
