"""Density and velocity maps accumulated from bubble tracks on a grid finer than the image.

Each track is interpolated linearly between its consecutive detections at a step of at most half
a fine pixel, so that a vessel is drawn continuously; every interpolated point adds one count to
its fine pixel and its segment's velocity to that pixel's velocity sum.

Fine grid: with ``upsampling`` u, coarse voxel ``i`` (centred at ``i * pixel_size``) is split
into fine pixels ``u*i, ..., u*i + u - 1``; fine pixel ``j`` is centred at
``(j + 0.5) * pixel_size / u - pixel_size / 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from blockrecon.checks import check_positive
from blockrecon.ulm._checks import check_per_axis, check_points


@dataclass(frozen=True)
class TrackMaps:
    """Maps on the fine grid ``(*shape * upsampling)``.

    Attributes:
        density: float32, interpolated track points per fine pixel.
        velocity: float32 ``(ndim, *fine_shape)``, mean velocity in lambda per second (zero where
            no track passes), one component per spatial axis.
        pixel_size: fine pixel size per axis, lambda.
    """

    density: torch.Tensor
    velocity: torch.Tensor
    pixel_size: tuple[float, ...]

    @property
    def speed(self) -> torch.Tensor:
        """Magnitude of the mean velocity, lambda per second."""
        return torch.linalg.vector_norm(self.velocity, dim=0)


def _interpolate(
    pos: np.ndarray, frm: np.ndarray, ids: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points along consecutive detections of each track, and each point's segment velocity
    (lambda per frame)."""
    if len(pos) == 0:
        return pos, pos
    order = np.lexsort((frm, ids))
    pos, frm, ids = pos[order], frm[order], ids[order]
    same = ids[1:] == ids[:-1]
    start, delta = pos[:-1][same], (pos[1:] - pos[:-1])[same]
    velocity = delta / (frm[1:] - frm[:-1])[same, None]
    n_sub = np.maximum(1, np.ceil(np.linalg.norm(delta, axis=1) / step).astype(np.int64))
    segment = np.repeat(np.arange(len(start)), n_sub)
    first = np.cumsum(n_sub) - n_sub
    fraction = (np.arange(len(segment)) - first[segment]) / n_sub[segment]
    points = start[segment] + fraction[:, None] * delta[segment]
    # Each track's last detection, which no segment starts from, carries its incoming velocity.
    last = np.flatnonzero(np.append(~same, True))
    incoming = last[last > 0]
    incoming = incoming[same[incoming - 1]]
    per_detection = np.zeros_like(pos)
    per_detection[:-1][same] = velocity
    per_detection[incoming] = per_detection[incoming - 1]
    return (
        np.concatenate([points, pos[last]]),
        np.concatenate([velocity[segment], per_detection[last]]),
    )


def track_maps(
    positions: torch.Tensor,
    frames: torch.Tensor,
    track_ids: torch.Tensor,
    shape: Sequence[int],
    pixel_size: float | Sequence[float],
    frame_rate: float,
    *,
    upsampling: int = 8,
) -> TrackMaps:
    """Accumulate tracks on a grid ``upsampling`` times finer than the image grid.

    Args:
        positions: float ``(n, ndim)`` track points, lambda.
        frames: int ``(n,)`` frame of each point.
        track_ids: int ``(n,)``; points with a negative id are ignored.
        shape: image grid shape (``ndim`` sizes).
        pixel_size: image voxel size in lambda, one value or one per axis.
        frame_rate: frames per second (Hz), for velocities.
        upsampling: fine pixels per image voxel along each axis.

    Returns:
        :class:`TrackMaps`.
    """
    if not all(int(s) == s and s > 0 for s in shape):
        raise ValueError(f"shape must hold positive ints, got {tuple(shape)}")
    pos, frm = check_points(positions, frames, len(shape))
    if not isinstance(track_ids, torch.Tensor):
        raise ValueError(f"track_ids must be a torch.Tensor, got {type(track_ids).__name__}")
    ids = np.asarray(track_ids.detach().cpu().numpy(), dtype=np.int64)
    if ids.shape != frm.shape:
        raise ValueError(f"track_ids must have shape {frm.shape}, got {ids.shape}")
    tracked = ids >= 0
    pairs = np.stack([ids[tracked], frm[tracked]], axis=1)
    if len(np.unique(pairs, axis=0)) != len(pairs):
        raise ValueError("a track has two positions in the same frame")
    check_positive(frame_rate, "frame_rate")
    if int(upsampling) != upsampling or upsampling < 1:
        raise ValueError(f"upsampling must be a positive int, got {upsampling}")
    upsampling = int(upsampling)
    pixel = check_per_axis("pixel_size", pixel_size, len(shape))
    fine_pixel = pixel / upsampling
    fine_shape = tuple(int(s) * upsampling for s in shape)
    points, velocity = _interpolate(
        pos[tracked], frm[tracked], ids[tracked], 0.5 * fine_pixel.min()
    )
    index = np.floor((points + 0.5 * pixel) / fine_pixel).astype(np.int64)
    inside = np.all((index >= 0) & (index < fine_shape), axis=1)
    flat = np.ravel_multi_index(tuple(index[inside].T), fine_shape)
    size = int(np.prod(fine_shape))
    density = np.bincount(flat, minlength=size)
    sums = np.stack(
        [np.bincount(flat, weights=v, minlength=size) for v in velocity[inside].T * frame_rate]
    )
    mean_velocity = sums / np.maximum(density, 1)
    return TrackMaps(
        density=torch.from_numpy(density.reshape(fine_shape).astype(np.float32)),
        velocity=torch.from_numpy(mean_velocity.reshape(-1, *fine_shape).astype(np.float32)),
        pixel_size=tuple(float(p) for p in fine_pixel),
    )
