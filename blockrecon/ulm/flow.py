"""Microbubbles flowing through a vessel tree with a Poiseuille velocity profile.

Each bubble enters at a root segment (chosen in proportion to the root's flow), follows the tree
downstream choosing a branch at every bifurcation in proportion to that branch's flow, keeps a
fixed relative radial offset in the lumen and moves at the Poiseuille speed of that offset:
``v = 2 v_mean (1 - (rho / R)^2)``, with ``v_mean`` proportional to the vessel radius. Offsets are
drawn flux-weighted (bubbles are carried by the flow, so fast streamlines carry more of them).
Lengths in lambda, times in frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blockrecon.physics.vessels import VesselTree

#: Largest relative radial offset; keeps the wall speed away from zero.
MAX_RELATIVE_OFFSET = 0.95


@dataclass(frozen=True)
class BubblePath:
    """The route and stream line of one bubble.

    Attributes:
        segments: int64 ``(n,)``, tree segments visited, upstream to downstream.
        offset: float64 ``(2,)``, relative radial offset in the lumen (inside the unit disk).
        segment_end_times: float64 ``(n,)``, time since entry at which each segment is left.
    """

    segments: np.ndarray
    offset: np.ndarray
    segment_end_times: np.ndarray

    @property
    def duration(self) -> float:
        """Frames from entering the tree to leaving it."""
        return float(self.segment_end_times[-1])


class FlowModel:
    """Samples bubble paths through a tree and evaluates bubble positions.

    Args:
        tree: the vessel tree (lambda).
        speed_per_radius: mean speed divided by radius, in 1/frame (lambda per frame per lambda).
    """

    def __init__(self, tree: VesselTree, speed_per_radius: float):
        self.tree = tree
        self._children = tree.children()
        self._flow = tree.radii**3
        self._roots = tree.roots()
        self._mean_speed = speed_per_radius * tree.radii
        self._lengths = tree.lengths

    def _route(self, rng: np.random.Generator) -> np.ndarray:
        root_flow = self._flow[self._roots]
        segment = int(rng.choice(self._roots, p=root_flow / root_flow.sum()))
        route = [segment]
        while len(self._children[segment]):
            options = self._children[segment]
            weights = self._flow[options]
            segment = int(
                options[0] if len(options) == 1 else rng.choice(options, p=weights / weights.sum())
            )
            route.append(segment)
        return np.array(route, dtype=np.int64)

    @staticmethod
    def _offset(rng: np.random.Generator) -> np.ndarray:
        """A relative offset in the unit disk, flux-weighted (density ~ 1 - rho^2)."""
        while True:
            offset = rng.uniform(-MAX_RELATIVE_OFFSET, MAX_RELATIVE_OFFSET, 2)
            rho_sq = offset @ offset
            if rho_sq <= MAX_RELATIVE_OFFSET**2 and rng.random() < 1.0 - rho_sq:
                return offset

    def sample_path(self, rng: np.random.Generator) -> BubblePath:
        """One random bubble path."""
        segments = self._route(rng)
        offset = self._offset(rng)
        speed = 2.0 * self._mean_speed[segments] * (1.0 - offset @ offset)
        end_times = np.cumsum(self._lengths[segments] / speed)
        return BubblePath(segments=segments, offset=offset, segment_end_times=end_times)

    def positions(self, path: BubblePath, times: np.ndarray) -> np.ndarray:
        """Positions ``(len(times), ndim)`` in lambda at ``times`` (frames since entry, each in
        ``[0, path.duration)``)."""
        ends = path.segment_end_times
        index = np.minimum(np.searchsorted(ends, times, side="right"), len(ends) - 1)
        starts = np.concatenate([[0.0], ends[:-1]])
        fraction = (times - starts[index]) / (ends[index] - starts[index])
        seg = path.segments[index]
        tree = self.tree
        centre = tree.starts[seg] + fraction[:, None] * (tree.ends[seg] - tree.starts[seg])
        in_plane = path.offset[: tree.ndim - 1]
        return centre + tree.radii[seg, None] * (tree.normals[seg] @ in_plane)
