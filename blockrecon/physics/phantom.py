"""Analytic 3D phantoms sampled on a grid: 3D Shepp-Logan and random ellipsoids.

A phantom is a continuous object defined in normalized coordinates ``u in [-1, 1)`` per axis,
``u = (i - M//2) / (M/2)`` for grid index ``i`` of a size-``M`` axis: the voxel at ``M//2`` is
the centre, which is where the FFT/NUFFT convention puts the origin. Sampling the same object on
a grid ``oversample`` times finer (``M = oversample * n``) therefore puts every coarse voxel
centre on a fine voxel centre, so k-space simulated from the fine grid describes the same object
as the coarse reference (simulation without the "inverse crime").

Edges are smoothed with a logistic profile of width ``edge_width`` voxels of the base grid, so
the object is nearly band-limited on that grid; its magnitude stays within [0, 1]. A smooth,
low-order phase is applied, as in real MR images. Outputs are complex64 torch tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from blockrecon.checks import check_positive_int
from blockrecon.physics.validation import check_image_shape

# Modified 3D Shepp-Logan (Toft's contrast, Kak-Slaney geometry), one row per ellipsoid:
# intensity, semi-axes (ax, ay, az), centre (x0, y0, z0), Euler angles (phi, theta, psi) in degrees.
SHEPP_LOGAN_3D = (
    (1.0, 0.6900, 0.920, 0.810, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.780, 0.0, -0.0184, 0.0, 0.0, 0.0, 0.0),
    (-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0, 0.0, -18.0, 0.0, 10.0),
    (-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0, 0.0, 18.0, 0.0, 10.0),
    (0.1, 0.2100, 0.250, 0.410, 0.0, 0.35, -0.15, 0.0, 0.0, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.0, 0.1, 0.25, 0.0, 0.0, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.0, -0.1, 0.25, 0.0, 0.0, 0.0),
    (0.1, 0.0460, 0.023, 0.050, -0.08, -0.605, 0.0, 0.0, 0.0, 0.0),
    (0.1, 0.0230, 0.023, 0.020, 0.0, -0.606, 0.0, 0.0, 0.0, 0.0),
    (0.1, 0.0230, 0.046, 0.020, 0.06, -0.605, 0.0, 0.0, 0.0, 0.0),
)

#: Phase of the Shepp-Logan phantom (radians): coefficients of x, y, z, x*y, z**2.
SHEPP_LOGAN_PHASE = (0.6, -0.4, 0.3, 0.5, -0.4)


def normalized_grid(shape: Sequence[int], oversample: int = 1) -> tuple[torch.Tensor, ...]:
    """Normalized voxel-centre coordinates of a 3D grid refined ``oversample`` times.

    Args:
        shape: base grid ``(nz, ny, nx)``.
        oversample: positive integer refinement; the grid has ``oversample * shape`` voxels.

    Returns:
        ``(z, y, x)``, float32 tensors broadcastable to the refined shape, in ``[-1, 1)``.
    """
    shape = check_image_shape(shape)
    if len(shape) != 3:
        raise ValueError(f"shape must be 3D (nz, ny, nx), got {shape}")
    check_positive_int(oversample, "oversample")
    axes = []
    for dim, n in enumerate(shape):
        m = n * oversample
        u = (torch.arange(m, dtype=torch.float32) - m // 2) / (m / 2)
        view = [1, 1, 1]
        view[dim] = m
        axes.append(u.reshape(view))
    return tuple(axes)


def _rotation(phi: float, theta: float, psi: float) -> torch.Tensor:
    """z-x-z Euler rotation matrix (angles in degrees), acting on (x, y, z) column vectors."""

    def about_z(a: float) -> torch.Tensor:
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        return torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    about_x = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    return about_z(psi) @ about_x @ about_z(phi)


def ellipsoid_mask(
    grid: tuple[torch.Tensor, ...],
    semi_axes: Sequence[float],
    centre: Sequence[float],
    angles: Sequence[float],
    edge: float,
) -> torch.Tensor:
    """Smooth indicator in [0, 1] of one ellipsoid.

    Args:
        grid: ``(z, y, x)`` from :func:`normalized_grid`.
        semi_axes: ``(ax, ay, az)`` in normalized units.
        centre: ``(x0, y0, z0)`` in normalized units.
        angles: z-x-z Euler angles ``(phi, theta, psi)`` in degrees.
        edge: logistic edge width in normalized units (0: sharp).

    Returns:
        float32 tensor of the grid's broadcast shape.
    """
    z, y, x = grid
    offsets = (x - centre[0], y - centre[1], z - centre[2])
    rot = _rotation(*angles).tolist()
    rho_sq = 0
    for row, axis in zip(rot, semi_axes, strict=True):
        local = row[0] * offsets[0] + row[1] * offsets[1] + row[2] * offsets[2]
        rho_sq = rho_sq + (local / axis) ** 2
    # (1 - rho) * min axis approximates the signed distance to the surface (exact for a sphere).
    distance = (1 - torch.sqrt(rho_sq)) * min(semi_axes)
    if edge == 0:
        return (distance >= 0).to(distance.dtype)
    return torch.sigmoid(distance / edge)


def polynomial_phase(grid: tuple[torch.Tensor, ...], coefficients: Sequence[float]) -> torch.Tensor:
    """A smooth phase in radians: ``coefficients`` of ``x, y, z, x*y, z**2`` on ``grid``
    (:func:`normalized_grid`); float32, the grid's broadcast shape."""
    z, y, x = grid
    terms = (x, y, z, x * y, z**2)
    return sum(c * t for c, t in zip(coefficients, terms, strict=True))


def edge_in_normalized_units(shape: tuple[int, ...], edge_width: float) -> float:
    """An edge width in voxels of the smallest axis of ``shape`` in normalized units; ValueError
    unless it is a finite number >= 0."""
    if not (isinstance(edge_width, (int, float)) and math.isfinite(edge_width) and edge_width >= 0):
        raise ValueError(f"edge_width must be a finite number >= 0, got {edge_width!r}")
    return edge_width * 2 / min(shape)


def shepp_logan_3d(
    shape: Sequence[int], oversample: int = 1, edge_width: float = 0.5
) -> torch.Tensor:
    """3D modified Shepp-Logan phantom with a smooth phase.

    Args:
        shape: base grid ``(nz, ny, nx)``.
        oversample: sample the same object on a grid ``oversample`` times finer.
        edge_width: logistic edge width in base-grid voxels (0 gives sharp edges).

    Returns:
        complex64 tensor ``oversample * shape``; magnitude in [0, 1]: 0.2 in the brain, 1 in the
        outer shell, which is only 0.03-0.05 thick (normalized units), so with smooth edges it
        appears dimmer than 1 at small sizes.
    """
    grid = normalized_grid(shape, oversample)
    edge = edge_in_normalized_units(tuple(shape), edge_width)
    magnitude = 0
    for intensity, ax, ay, az, x0, y0, z0, phi, theta, psi in SHEPP_LOGAN_3D:
        mask = ellipsoid_mask(grid, (ax, ay, az), (x0, y0, z0), (phi, theta, psi), edge)
        magnitude = magnitude + intensity * mask
    magnitude = magnitude.clamp(0, 1)
    return torch.polar(magnitude, polynomial_phase(grid, SHEPP_LOGAN_PHASE)).to(torch.complex64)


def random_ellipsoids(
    shape: Sequence[int],
    n_ellipsoids: int = 8,
    seed: int = 0,
    oversample: int = 1,
    edge_width: float = 0.5,
) -> torch.Tensor:
    """Random ellipsoids inside the unit ball, with a random smooth phase; reproducible by seed.

    Each ellipsoid has semi-axes in [0.1, 0.5], a random orientation, a centre that keeps it
    inside the unit ball and an intensity in [0.2, 1]; where they overlap the brightest wins.

    Args:
        shape: base grid ``(nz, ny, nx)``.
        n_ellipsoids: number of ellipsoids.
        seed: seed of the NumPy random generator.
        oversample: sample the same object on a grid ``oversample`` times finer.
        edge_width: logistic edge width in base-grid voxels.

    Returns:
        complex64 tensor ``oversample * shape`` with magnitude in [0, 1].
    """
    check_positive_int(n_ellipsoids, "n_ellipsoids")
    grid = normalized_grid(shape, oversample)
    edge = edge_in_normalized_units(tuple(shape), edge_width)
    rng = np.random.default_rng(seed)
    magnitude = torch.zeros(torch.broadcast_shapes(*(g.shape for g in grid)), dtype=torch.float32)
    for _ in range(n_ellipsoids):
        semi_axes = tuple(rng.uniform(0.1, 0.5, size=3).tolist())
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        centre = tuple((direction * rng.uniform(0, 0.95 - max(semi_axes))).tolist())
        angles = tuple(rng.uniform(0, 180, size=3).tolist())
        intensity = float(rng.uniform(0.2, 1.0))
        mask = ellipsoid_mask(grid, semi_axes, centre, angles, edge)
        magnitude = torch.maximum(magnitude, intensity * mask)
    phase_coefficients = tuple(rng.uniform(-0.6, 0.6, size=len(SHEPP_LOGAN_PHASE)).tolist())
    return torch.polar(magnitude, polynomial_phase(grid, phase_coefficients)).to(torch.complex64)
