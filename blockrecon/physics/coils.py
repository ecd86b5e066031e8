"""Synthetic receive-coil sensitivity maps.

Maps are evaluated on the normalized grid of :mod:`blockrecon.physics.phantom`, so maps for a
grid ``oversample`` times finer describe the same coil array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from blockrecon.checks import check_positive_int
from blockrecon.physics.phantom import normalized_grid


def birdcage_maps(
    n_coils: int,
    shape: Sequence[int],
    n_rings: int | None = None,
    radius: float = 1.5,
    oversample: int = 1,
) -> torch.Tensor:
    """Birdcage-like coil array: loops on rings around the z axis, smooth magnitude and phase.

    Coil ``c`` sits at azimuth ``alpha_c`` on a cylinder of radius ``radius`` (normalized units,
    the field of view spans [-1, 1)); rings are spread evenly in z over [-0.5, 0.5]. Its raw
    sensitivity at ``r`` is ``exp(i * (angle_xy(r - p_c) + alpha_c)) / |r - p_c|``. The maps are
    then normalized voxel by voxel so that ``sum_c |S_c|^2 = 1`` everywhere in the grid (the
    whole field of view), as ESPIRiT-style maps are inside the object.

    Args:
        n_coils: number of coils.
        shape: base grid ``(nz, ny, nx)``.
        n_rings: rings along z; must divide ``n_coils`` (default 2 when ``n_coils`` is even and
            at least 4, else 1).
        radius: cylinder radius in normalized units (> 1 keeps the coils outside the FOV).
        oversample: evaluate on a grid ``oversample`` times finer.

    Returns:
        complex64 tensor (n_coils, *oversample*shape).
    """
    check_positive_int(n_coils, "n_coils")
    if n_rings is None:
        n_rings = 2 if n_coils >= 4 and n_coils % 2 == 0 else 1
    check_positive_int(n_rings, "n_rings")
    if n_coils % n_rings:
        raise ValueError(f"n_rings ({n_rings}) must divide n_coils ({n_coils})")
    if not (math.isfinite(radius) and radius > math.sqrt(2)):
        raise ValueError(f"radius must exceed sqrt(2) (coils outside the FOV), got {radius!r}")
    z, y, x = normalized_grid(shape, oversample)
    per_ring = n_coils // n_rings
    ring_z = torch.linspace(-0.5, 0.5, n_rings) if n_rings > 1 else torch.zeros(1)
    maps = []
    for ring in range(n_rings):
        for k in range(per_ring):
            alpha = 2 * math.pi * (k + 0.5 * ring) / per_ring
            dx, dy = x - radius * math.cos(alpha), y - radius * math.sin(alpha)
            dz = z - float(ring_z[ring])
            distance = torch.sqrt(dx**2 + dy**2 + dz**2)
            maps.append(torch.polar(1 / distance, torch.atan2(dy, dx) + alpha))
    maps = torch.stack(maps)
    rss = torch.sqrt((maps.abs() ** 2).sum(dim=0, keepdim=True))
    return (maps / rss).to(torch.complex64)
