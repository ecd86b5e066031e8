"""A 3D pulmonary MR angiography phantom: a bright vessel tree over smooth tissue classes.

Like the other analytic phantoms (:mod:`~blockrecon.physics.phantom`) the object is continuous,
defined in normalized coordinates ``[-1, 1)`` per image axis and sampled on any grid, also
anisotropic ones (the object then fills the field of view along every axis, as with thicker
slices of the same anatomy) and ``oversample`` times finer grids (the same object, for
simulation without the inverse crime). Points are written ``(x, y, z)`` as in
:func:`~blockrecon.physics.phantom.ellipsoid_mask`: ``x`` is the last image axis, ``z`` the
first (here head-foot).

Anatomy, with the magnitude of each class (:data:`ANGIO_INTENSITIES`):

* the thorax, an ellipsoid of soft tissue (0.3);
* two lungs, ellipsoids of low-signal parenchyma (0.06);
* the heart, a mid-intensity ellipsoid below and between the lungs (0.5);
* the pulmonary arteries (1.0): a trunk rising from the heart, the left and right pulmonary
  arteries to the hila, and in each lung a random tree grown by
  :func:`~blockrecon.physics.vessels.random_vessel_tree` (Murray's law at bifurcations) that
  stays inside the lung. Every segment starts where its parent ends, so the tree is one
  connected vessel.

Vessels are tubes (capsules around the centreline segments) with logistic edges of
``edge_width`` base-grid voxels, like the ellipsoids. The seed draws the tree, small changes of
the organs' positions and sizes, and a smooth phase: a low-order polynomial
(:func:`~blockrecon.physics.phantom.polynomial_phase`) plus two Gaussian bumps, at most about
2.5 radians per unit of normalized length. The tree does not depend on the grid: one seed gives
the same anatomy at every matrix size; vessels thinner than a voxel appear dimmer (partial
volume).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from blockrecon.physics.phantom import (
    edge_in_normalized_units,
    ellipsoid_mask,
    normalized_grid,
    polynomial_phase,
)
from blockrecon.physics.vessels import TreeParameters, VesselTree, graft, random_vessel_tree

__all__ = ["ANGIO_INTENSITIES", "angio_phantom", "angio_tree", "angio_vessel_mask"]

#: Magnitude of each tissue class.
ANGIO_INTENSITIES = {"body": 0.3, "lung": 0.06, "heart": 0.5, "vessel": 1.0}

#: Radius of the pulmonary trunk (normalized units); the left and right pulmonary arteries take
#: half its flow each (Murray's law), the smallest vessels grown are ``MIN_RADIUS``.
TRUNK_RADIUS = 0.09
MIN_RADIUS = 0.016
#: Directions ``(x, y, z)`` of the lobar arteries from the hilum (``x`` pointing away from the
#: midline): upper, anterior, posterior and lower.
LOBAR_DIRECTIONS = ((0.4, 0.2, 1.0), (0.8, 1.0, 0.0), (0.8, -1.0, 0.0), (0.4, -0.2, -1.0))
#: Centreline step of the vessels (normalized units).
STEP = 0.03
#: The lungs' trees stay this fraction of the lung's semi-axes inside it.
LUNG_MARGIN = 0.9
#: The logistic edge is evaluated this many edge widths beyond a vessel wall (sigmoid(-8) =
#: 3e-4), zero farther out.
EDGE_REACH = 8.0


class _Ellipsoid:
    """An axis-aligned ellipsoid: centre and semi-axes ``(x, y, z)`` in normalized units."""

    def __init__(self, centre: np.ndarray, semi_axes: np.ndarray) -> None:
        self.centre, self.semi_axes = centre, semi_axes

    def contains(self, point: np.ndarray, scale: float = 1.0) -> bool:
        return float(np.sum(((point - self.centre) / (scale * self.semi_axes)) ** 2)) < 1.0

    def mask(self, grid: tuple[torch.Tensor, ...], edge: float) -> torch.Tensor:
        return ellipsoid_mask(grid, self.semi_axes.tolist(), self.centre.tolist(), (0, 0, 0), edge)


def _anatomy(rng: np.random.Generator) -> dict[str, _Ellipsoid | list[_Ellipsoid]]:
    """Thorax, lungs and heart, moved by up to 0.03 and resized by up to 5% at random."""

    def jittered(centre: tuple[float, ...], semi_axes: tuple[float, ...]) -> _Ellipsoid:
        return _Ellipsoid(
            np.asarray(centre) + rng.uniform(-0.03, 0.03, 3),
            np.asarray(semi_axes) * rng.uniform(0.95, 1.05, 3),
        )

    return {
        "body": jittered((0.0, 0.0, 0.0), (0.9, 0.72, 0.92)),
        "lungs": [jittered((side * 0.45, 0.0, 0.1), (0.34, 0.55, 0.7)) for side in (-1.0, 1.0)],
        "heart": jittered((0.06, -0.1, -0.42), (0.3, 0.3, 0.26)),
    }


def _branch(
    start: np.ndarray, end: np.ndarray, radius: float, rng: np.random.Generator
) -> VesselTree:
    """A straight vessel from ``start`` to about ``end`` (whole steps of :data:`STEP`)."""
    length = float(np.linalg.norm(end - start))
    params = TreeParameters(
        radius_range=(radius, radius),
        step=STEP,
        branch_length=(length, length),
        tortuosity=0.0,
        max_depth=0,
    )
    box = np.full(3, 2.0)
    return random_vessel_tree(-box, box, 1, params, rng, roots=[(start, end - start)])


def _pulmonary_arteries(
    lungs: list[_Ellipsoid], heart: _Ellipsoid, rng: np.random.Generator
) -> VesselTree:
    """Trunk from the heart, left and right pulmonary arteries to the hila, and from each
    hilum :data:`LOBAR_DIRECTIONS` random trees, one per lobar artery, inside the lung."""
    trunk_start = heart.centre + np.array([0.0, 0.05, 0.5 * heart.semi_axes[2]])
    bifurcation = np.array([0.0, 0.0, 0.1]) + rng.uniform(-0.03, 0.03, 3)
    tree = _branch(trunk_start, bifurcation, TRUNK_RADIUS, rng)
    trunk_end = len(tree.radii) - 1
    artery_radius = TRUNK_RADIUS * math.cbrt(0.5)
    lobar_params = TreeParameters(
        radius_range=(MIN_RADIUS, artery_radius * math.cbrt(1 / len(LOBAR_DIRECTIONS))),
        step=STEP,
        branch_length=(0.06, 0.16),
        tortuosity=0.05,
        branch_angle=(0.3, 0.8),
    )
    for lung in lungs:
        side = np.sign(lung.centre[0])
        hilum = lung.centre - np.array([side * 0.45 * lung.semi_axes[0], 0.0, 0.0])
        hilum = hilum + rng.uniform(-0.03, 0.03, 3)
        pulmonary_artery = _branch(tree.ends[trunk_end], hilum, artery_radius, rng)
        tree = graft(tree, pulmonary_artery, trunk_end)
        artery_end = len(tree.radii) - 1
        roots = [
            (tree.ends[artery_end], np.array(d) * (side, 1.0, 1.0) + rng.normal(0.0, 0.15, 3))
            for d in LOBAR_DIRECTIONS
        ]
        lobes = random_vessel_tree(
            np.full(3, -1.0),
            np.full(3, 1.0),
            len(roots),
            lobar_params,
            rng,
            roots=roots,
            inside=lambda point, lung=lung: lung.contains(point, LUNG_MARGIN),
        )
        tree = graft(tree, lobes, artery_end)
    return tree


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def angio_tree(seed: int = 0) -> VesselTree:
    """The pulmonary artery tree of :func:`angio_phantom` for ``seed``.

    Returns:
        :class:`~blockrecon.physics.vessels.VesselTree` in normalized ``(x, y, z)``
        coordinates, one root (the trunk); the same for every grid.

    Raises:
        ValueError: ``seed`` is not an int >= 0.
    """
    return _draw(seed)[1]


def _draw(seed: int) -> tuple[dict, VesselTree, np.random.Generator]:
    """The anatomy and the tree of ``seed``, and the generator, to draw the phase from next."""
    rng = np.random.default_rng(_check_seed(seed))
    anatomy = _anatomy(rng)
    return anatomy, _pulmonary_arteries(anatomy["lungs"], anatomy["heart"], rng), rng


def _index_range(low: float, high: float, size: int) -> slice:
    """The grid indices of a size-``size`` axis whose normalized coordinate lies in
    ``[low, high]`` (``u = (i - size//2) / (size/2)``)."""
    first = max(0, math.ceil(low * size / 2 + size // 2))
    last = min(size - 1, math.floor(high * size / 2 + size // 2))
    return slice(first, max(first, last + 1))


def _render_tubes(tree: VesselTree, grid: tuple[torch.Tensor, ...], edge: float) -> torch.Tensor:
    """Smooth indicator in [0, 1] of the union of the tree's tubes (capsules of radius ``r``
    around each segment), evaluated within :data:`EDGE_REACH` edge widths of each wall."""
    z, y, x = grid
    sizes = (x.shape[2], y.shape[1], z.shape[0])
    axes = (x.reshape(-1), y.reshape(-1), z.reshape(-1))
    mask = torch.zeros(sizes[::-1], dtype=torch.float32)
    voxel = 2.0 / min(sizes)
    reach = EDGE_REACH * edge + voxel
    for start, end, radius in zip(tree.starts, tree.ends, tree.radii, strict=True):
        low = np.minimum(start, end) - radius - reach
        high = np.maximum(start, end) + radius + reach
        sx, sy, sz = (_index_range(low[d], high[d], sizes[d]) for d in range(3))
        local = (
            axes[0][sx].reshape(1, 1, -1),
            axes[1][sy].reshape(1, -1, 1),
            axes[2][sz].reshape(-1, 1, 1),
        )
        if any(a.numel() == 0 for a in local):
            continue
        axis = torch.as_tensor(end - start, dtype=torch.float32)
        relative = [local[d] - float(start[d]) for d in range(3)]
        along = sum(relative[d] * axis[d] for d in range(3)) / max(float(axis @ axis), 1e-12)
        along = along.clamp(0.0, 1.0)
        distance = torch.sqrt(sum((relative[d] - along * axis[d]) ** 2 for d in range(3)))
        inside = (
            (distance <= radius).to(torch.float32)
            if edge == 0
            else torch.sigmoid((radius - distance) / edge)
        )
        block = mask[sz, sy, sx]
        torch.maximum(block, inside, out=block)
    return mask


def _check_grid(shape: Sequence[int], oversample: int, edge_width: float):
    grid = normalized_grid(shape, oversample)
    return grid, edge_in_normalized_units(tuple(shape), edge_width)


def angio_vessel_mask(
    shape: Sequence[int], seed: int = 0, oversample: int = 1, edge_width: float = 0.5
) -> torch.Tensor:
    """The vessels of :func:`angio_phantom` alone: float32 ``oversample * shape`` in [0, 1]
    (1 inside a vessel, the logistic edge across its wall); a segmentation label."""
    grid, edge = _check_grid(shape, oversample, edge_width)
    return _render_tubes(angio_tree(seed), grid, edge)


def angio_phantom(
    shape: Sequence[int], seed: int = 0, oversample: int = 1, edge_width: float = 0.5
) -> torch.Tensor:
    """A pulmonary MR angiography phantom (see the module docstring).

    Args:
        shape: base grid ``(nz, ny, nx)``, any positive sizes (anisotropic too).
        seed: int >= 0; draws the vessel tree, the organs' jitter and the phase (same seed,
            identical volume).
        oversample: sample the same object on a grid ``oversample`` times finer.
        edge_width: logistic edge width in base-grid voxels of the smallest axis (0: sharp).

    Returns:
        complex64 tensor ``oversample * shape``; magnitude in [0, 1]: 0 outside the thorax,
        the classes of :data:`ANGIO_INTENSITIES` inside, the vessels 1 where a voxel lies inside
        one.

    Raises:
        ValueError: ``shape`` not three positive ints, ``seed`` not an int >= 0, ``oversample``
            not a positive int, or ``edge_width`` negative or not finite.
    """
    grid, edge = _check_grid(shape, oversample, edge_width)
    anatomy, tree, rng = _draw(seed)
    magnitude = ANGIO_INTENSITIES["body"] * anatomy["body"].mask(grid, edge)
    for name, organs in (("lung", anatomy["lungs"]), ("heart", [anatomy["heart"]])):
        for organ in organs:
            inside = organ.mask(grid, edge)
            magnitude = magnitude * (1 - inside) + ANGIO_INTENSITIES[name] * inside
    vessels = _render_tubes(tree, grid, edge)
    magnitude = magnitude * (1 - vessels) + ANGIO_INTENSITIES["vessel"] * vessels
    return torch.polar(magnitude, _smooth_phase(grid, rng)).to(torch.complex64)


def _smooth_phase(grid: tuple[torch.Tensor, ...], rng: np.random.Generator) -> torch.Tensor:
    """A random polynomial phase (coefficients within 0.4) plus two Gaussian bumps of up to 0.6
    radians and widths 0.35 to 0.6 (normalized units)."""
    phase = polynomial_phase(grid, rng.uniform(-0.4, 0.4, 5).tolist())
    z, y, x = grid
    for _ in range(2):
        cx, cy, cz = rng.uniform(-0.6, 0.6, 3)
        amplitude, width = rng.uniform(-0.6, 0.6), rng.uniform(0.35, 0.6)
        distance_sq = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        phase = phase + amplitude * torch.exp(-distance_sq / (2 * width**2))
    return phase
