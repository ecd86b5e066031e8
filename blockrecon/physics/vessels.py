"""Random branching vessel trees: the vascular anatomy of in-silico ultrasound localization
microscopy (:mod:`blockrecon.ulm.simulate`) and of the MR angiography phantom
(:mod:`blockrecon.physics.angio`).

A tree is a set of short straight segments (centreline pieces) with a radius each and a link to
the parent segment. Branches grow from the faces of a box (or from given root points) by a
directed random walk and bifurcate following Murray's law ``r0^3 = r1^3 + r2^3``. Lengths are in
one unit of the caller's choice: wavelengths (lambda) for ULM, normalized image coordinates for
the angiography phantom.

Flow follows the same law: the volume flow of a segment is proportional to ``r^3`` and its mean
speed to ``r`` (``Q / (pi r^2)``), so flow is conserved at every bifurcation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VesselTree:
    """Centreline segments of one or more vessel trees (lengths in the growth unit).

    Attributes:
        starts: float64 ``(n_segments, ndim)``, segment start points.
        ends: float64 ``(n_segments, ndim)``, segment end points.
        radii: float64 ``(n_segments,)``, vessel radius.
        parents: int64 ``(n_segments,)``, index of the upstream segment, -1 for a root.
        normals: float64 ``(n_segments, ndim, ndim - 1)``, orthonormal vectors perpendicular to
            each segment, transported along the tree so that they turn smoothly.
    """

    starts: np.ndarray
    ends: np.ndarray
    radii: np.ndarray
    parents: np.ndarray
    normals: np.ndarray

    @property
    def ndim(self) -> int:
        return self.starts.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """Segment lengths, ``(n_segments,)``."""
        return np.linalg.norm(self.ends - self.starts, axis=1)

    def children(self) -> list[np.ndarray]:
        """For each segment, the indices of its downstream segments."""
        order = np.argsort(self.parents, kind="stable")
        sorted_parents = self.parents[order]
        n = len(self.parents)
        bounds = np.searchsorted(sorted_parents, np.arange(n + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(n)]

    def roots(self) -> np.ndarray:
        """Indices of the root segments."""
        return np.flatnonzero(self.parents < 0)


def _always(point: np.ndarray) -> bool:
    return True


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perpendicular(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector perpendicular to the unit vector ``direction``."""
    while True:
        v = rng.standard_normal(direction.shape)
        v -= (v @ direction) * direction
        norm = np.linalg.norm(v)
        if norm > 1e-6:
            return v / norm


def _transport(normals: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Project the columns of ``normals`` onto the plane perpendicular to ``direction``, then
    re-orthonormalize them (Gram-Schmidt): parallel transport between nearby directions."""
    out = normals - np.outer(direction, direction @ normals)
    for j in range(out.shape[1]):
        out[:, j] -= out[:, :j] @ (out[:, :j].T @ out[:, j])
        out[:, j] /= np.linalg.norm(out[:, j])
    return out


def _initial_normals(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    basis = np.linalg.qr(
        np.column_stack([direction, rng.standard_normal((len(direction), len(direction) - 1))])
    )[0]
    return basis[:, 1:]


@dataclass(frozen=True)
class TreeParameters:
    """How trees grow. Lengths and radii in the growth unit (lambda for ULM).

    Attributes:
        radius_range: (smallest, largest) radius; roots have the largest, branches below the
            smallest are not grown.
        step: length of one centreline segment.
        branch_length: (min, max) length of a branch between bifurcations, drawn uniformly.
        tortuosity: standard deviation of the random direction change per step (radians-ish).
        split_range: range of the flow fraction ``r1^3 / r0^3`` taken by the first child.
        branch_angle: (min, max) angle in radians between a child and its parent's direction.
        max_depth: maximum number of bifurcations along a path.
    """

    radius_range: tuple[float, float]
    step: float = 0.5
    branch_length: tuple[float, float] = (3.0, 8.0)
    tortuosity: float = 0.08
    split_range: tuple[float, float] = (0.25, 0.75)
    branch_angle: tuple[float, float] = (0.3, 0.8)
    max_depth: int = 12


def random_vessel_tree(
    box_low: np.ndarray,
    box_high: np.ndarray,
    n_trees: int,
    params: TreeParameters,
    rng: np.random.Generator,
    roots: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    inside: Callable[[np.ndarray], bool] | None = None,
) -> VesselTree:
    """Grow ``n_trees`` random trees from random points on the faces of a box.

    Args:
        box_low, box_high: float ``(ndim,)``, corners of the box; branches end when they leave
            it.
        n_trees: number of roots (>= 1) drawn on the box faces, aimed at its centre.
        params: growth parameters.
        rng: random generator (the only source of randomness).
        roots: ``(point, direction)`` pairs, float ``(ndim,)`` each: grow from these instead of
            ``n_trees`` random face points (``n_trees`` is then ignored); directions need not be
            unit vectors.
        inside: a further domain, ``inside(point) -> bool``; a branch also ends at the first
            segment whose end point leaves it.
    """
    ndim = len(box_low)
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    radii: list[float] = []
    parents: list[int] = []
    normals: list[np.ndarray] = []
    centre = 0.5 * (box_low + box_high)
    r_min, r_max = params.radius_range

    # Each pending branch: (start point, direction, normals, radius, parent segment, depth).
    pending = []
    for point, direction in roots if roots is not None else ():
        direction = _unit(np.asarray(direction, dtype=np.float64))
        point = np.array(point, dtype=np.float64)
        pending.append((point, direction, _initial_normals(direction, rng), r_max, -1, 0))
    for _ in range(n_trees if roots is None else 0):
        axis = rng.integers(ndim)
        point = rng.uniform(box_low, box_high)
        point[axis] = box_low[axis] if rng.random() < 0.5 else box_high[axis]
        direction = _unit(centre - point + rng.normal(0.0, 0.25, ndim) * (box_high - box_low))
        pending.append((point, direction, _initial_normals(direction, rng), r_max, -1, 0))

    while pending:
        point, direction, frame, radius, parent, depth = pending.pop()
        n_steps = max(1, int(round(rng.uniform(*params.branch_length) / params.step)))
        within = True
        for _ in range(n_steps):
            direction = _unit(direction + rng.normal(0.0, params.tortuosity, ndim))
            frame = _transport(frame, direction)
            end = point + params.step * direction
            starts.append(point)
            ends.append(end)
            radii.append(radius)
            parents.append(parent)
            normals.append(frame)
            parent = len(starts) - 1
            point = end
            if np.any(end < box_low) or np.any(end > box_high) or not (inside or _always)(end):
                within = False
                break
        if not within or depth >= params.max_depth:
            continue
        fraction = rng.uniform(*params.split_range)
        child_radii = radius * np.cbrt(np.array([fraction, 1.0 - fraction]))
        side = _perpendicular(direction, rng)
        # The thinner child turns more, as in real bifurcations.
        angles = rng.uniform(*params.branch_angle, size=2) * (child_radii.min() / child_radii)
        for child_radius, angle, sign in zip(child_radii, angles, (1.0, -1.0), strict=True):
            if child_radius < r_min:
                continue
            child_dir = _unit(np.cos(angle) * direction + sign * np.sin(angle) * side)
            pending.append(
                (point, child_dir, _transport(frame, child_dir), child_radius, parent, depth + 1)
            )

    return VesselTree(
        starts=np.array(starts),
        ends=np.array(ends),
        radii=np.array(radii),
        parents=np.array(parents, dtype=np.int64),
        normals=np.array(normals),
    )


def graft(stem: VesselTree, branches: VesselTree, at: int) -> VesselTree:
    """One tree: ``branches`` appended to ``stem``, their roots made children of segment ``at``.

    Args:
        stem: the tree to extend.
        branches: segments to append (same ``ndim``); their roots should start where segment
            ``at`` ends for the vessels to join.
        at: index of the segment of ``stem`` that feeds ``branches``.

    Returns:
        the joined :class:`VesselTree`; indices of ``stem``'s segments are unchanged, those of
        ``branches`` are shifted by ``len(stem.radii)``.
    """
    if not 0 <= at < len(stem.radii):
        raise ValueError(
            f"at must index a segment of the stem (0..{len(stem.radii) - 1}), got {at}"
        )
    parents = np.where(branches.parents < 0, at, branches.parents + len(stem.radii))
    return VesselTree(
        starts=np.concatenate([stem.starts, branches.starts]),
        ends=np.concatenate([stem.ends, branches.ends]),
        radii=np.concatenate([stem.radii, branches.radii]),
        parents=np.concatenate([stem.parents, parents]),
        normals=np.concatenate([stem.normals, branches.normals]),
    )
