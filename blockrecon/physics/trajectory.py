"""Non-Cartesian 3D k-space trajectories.

All trajectories follow the SigPy/BART convention: float32 torch tensors whose last axis holds
``ndim = 3`` coordinates in units of the image grid (cycles per field of view), ``coord[..., i]``
belonging to image axis ``i`` of an image shaped ``(nz, ny, nx)``. Every coordinate lies in
``[-N/2, N/2)`` for the image size ``N`` the trajectory is scaled for.

Sampling is "Nyquist-scaled" for an image size ``N`` when neighbouring samples along the readout
are at most one grid unit apart. The angular density is set by the number of spokes or interleaves
(see each function); undersampling factors are quoted against that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from blockrecon.checks import check_positive_int

from .validation import check_image_shape

#: Multidimensional golden means for 3D radial ordering (Chan et al., MRM 2009).
GOLDEN_MEANS_3D = (0.465571231876768, 0.682327803828019)
#: Golden ratio.
GOLDEN_RATIO = (1 + math.sqrt(5)) / 2
#: Azimuthal increment between full spokes through the centre (Winkelmann et al., 2007): 111.25 deg.
GOLDEN_ANGLE_FULL_SPOKE = math.pi / GOLDEN_RATIO
#: Azimuthal increment between centre-out interleaves: 2*pi/phi^2, about 137.51 deg.
GOLDEN_ANGLE_CENTRE_OUT = 2 * math.pi / GOLDEN_RATIO**2


def _readout_positions(n_readout: int, image_size: int) -> torch.Tensor:
    """Signed positions along a full spoke, ``n_readout`` values evenly in ``[-N/2, N/2)``."""
    step = image_size / n_readout
    return (torch.arange(n_readout, dtype=torch.float64) - n_readout / 2) * step


def _inside_grid(coord: torch.Tensor, image_size: int) -> torch.Tensor:
    """Clamp float64 coordinates below ``N/2`` (a reversed spoke's first sample lands on ``+N/2``)
    and cast to float32."""
    upper = torch.nextafter(torch.tensor(image_size / 2, dtype=torch.float32), torch.tensor(0.0))
    return coord.clamp(max=upper.item()).to(torch.float32)


def radial_directions(n_spokes: int, golden: bool = True) -> torch.Tensor:
    """Unit directions of full 3D spokes, covering a hemisphere (a full spoke covers both halves).

    Args:
        n_spokes: number of spokes.
        golden: multidimensional golden-means ordering (any contiguous run of spokes covers the
            hemisphere nearly uniformly); otherwise a uniform spiral ordering (Wong and Roos, 1994)
            in which consecutive spokes are neighbours.

    Returns:
        float64 tensor (n_spokes, 3) of unit vectors ``(dz, dy, dx)`` with ``dz >= 0``.
    """
    check_positive_int(n_spokes, "n_spokes")
    index = torch.arange(n_spokes, dtype=torch.float64)
    if golden:
        dz = torch.remainder(index * GOLDEN_MEANS_3D[0], 1.0)
        azimuth = 2 * math.pi * torch.remainder(index * GOLDEN_MEANS_3D[1], 1.0)
    else:
        dz = (2 * index + 1) / (2 * n_spokes)
        azimuth = torch.remainder(math.sqrt(2 * math.pi * n_spokes) * torch.asin(dz), 2 * math.pi)
    in_plane = torch.sqrt(1 - dz**2)
    return torch.stack([dz, in_plane * torch.sin(azimuth), in_plane * torch.cos(azimuth)], dim=-1)


def radial_3d(
    n_spokes: int, n_readout: int, golden: bool = True, image_size: int | None = None
) -> torch.Tensor:
    """3D radial ("kooshball") trajectory of full spokes through the k-space centre.

    Args:
        n_spokes: number of spokes. Angular Nyquist sampling of an ``N^3`` image needs about
            ``pi * N**2 / 2`` full spokes; fewer spokes undersample by that ratio.
        n_readout: samples per spoke.
        golden: golden-means ordering of spoke directions, else uniform spiral ordering
            (see :func:`radial_directions`).
        image_size: the image size ``N`` the coordinates are scaled for (default ``n_readout``,
            i.e. unit readout spacing; ``n_readout = 2 * N`` gives 2x readout oversampling).

    Returns:
        float32 tensor (n_spokes, n_readout, 3) in ``[-N/2, N/2)``.
    """
    check_positive_int(n_readout, "n_readout")
    image_size = check_positive_int(image_size or n_readout, "image_size")
    directions = radial_directions(n_spokes, golden)
    radius = _readout_positions(n_readout, image_size)
    return _inside_grid(radius[None, :, None] * directions[:, None, :], image_size)


def _stack(in_plane: torch.Tensor, n_partitions: int, image_size: int) -> torch.Tensor:
    """Repeat float64 in-plane coordinates (n_shots, n_readout, 2) over Cartesian partitions.

    Returns float32 (n_shots, n_partitions, n_readout, 3) with ``kz`` in ``[-P/2, P/2)``.
    """
    kz = torch.arange(n_partitions, dtype=torch.float32) - n_partitions / 2
    n_shots, n_readout, _ = in_plane.shape
    kz = kz[None, :, None, None].expand(n_shots, n_partitions, n_readout, 1)
    kyx = _inside_grid(in_plane, image_size)[:, None].expand(n_shots, n_partitions, n_readout, 2)
    return torch.cat([kz, kyx], dim=-1)


def stack_of_stars(
    n_spokes: int,
    n_readout: int,
    n_partitions: int,
    golden: bool = True,
    image_size: int | None = None,
) -> torch.Tensor:
    """Stack of stars: 2D radial spokes in ``(ky, kx)``, Cartesian partitions along ``kz``.

    Nyquist-scaled for an image ``(n_partitions, N, N)``; in-plane angular Nyquist sampling needs
    about ``pi * N / 2`` full spokes.

    Args:
        n_spokes: spokes per partition.
        n_readout: samples per spoke.
        n_partitions: number of ``kz`` partitions (unit spacing).
        golden: rotate successive spokes by the golden angle (111.25 deg), else by ``pi/n_spokes``.
        image_size: in-plane image size ``N`` (default ``n_readout``).

    Returns:
        float32 tensor (n_spokes, n_partitions, n_readout, 3): spoke-major, so that a contiguous
        range of spokes (a time frame) is a slice along axis 0.
    """
    check_positive_int(n_spokes, "n_spokes")
    check_positive_int(n_readout, "n_readout")
    check_positive_int(n_partitions, "n_partitions")
    image_size = check_positive_int(image_size or n_readout, "image_size")
    step = GOLDEN_ANGLE_FULL_SPOKE if golden else math.pi / n_spokes
    angle = torch.arange(n_spokes, dtype=torch.float64) * step
    radius = _readout_positions(n_readout, image_size)
    direction = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)
    in_plane = radius[None, :, None] * direction[:, None, :]
    return _stack(in_plane, n_partitions, image_size)


def _equal_arc_length_parameter(n_samples: int, total_angle: float) -> torch.Tensor:
    """Parameters ``t in [0, 1)`` of ``n_samples`` points equally spaced in arc length along the
    Archimedean spiral ``r = t, angle = total_angle * t`` (arc length integrated numerically)."""
    fine = torch.linspace(0, 1, 64 * n_samples + 1, dtype=torch.float64)
    speed = torch.sqrt(1 + (total_angle * fine) ** 2)
    length = torch.cat(
        [
            torch.zeros(1, dtype=torch.float64),
            torch.cumsum((speed[1:] + speed[:-1]) / 2 * torch.diff(fine), 0),
        ]
    )
    target = torch.arange(n_samples, dtype=torch.float64) / n_samples * length[-1]
    index = torch.searchsorted(length, target).clamp(1, len(fine) - 1)
    lo, hi = length[index - 1], length[index]
    return fine[index - 1] + (target - lo) / (hi - lo) * (fine[index] - fine[index - 1])


def stack_of_spirals(
    n_interleaves: int,
    n_readout: int,
    n_partitions: int,
    image_size: int,
    n_turns: float | None = None,
    golden: bool = True,
) -> torch.Tensor:
    """Stack of centre-out Archimedean spirals in ``(ky, kx)``, Cartesian partitions along ``kz``.

    Each interleave is ``k(t) = k_max * t * exp(i * (2*pi*n_turns*t + rotation))``, ``t in
    [0, 1)``, sampled at equal arc-length steps (constant speed along the curve).
    Nyquist-scaled for an image ``(n_partitions, N, N)``: the default ``n_turns = N / (2 *
    n_interleaves)`` spaces neighbouring turns one grid unit apart, and the readout is sampled at
    most one unit apart when ``n_readout`` is at least the arm length, about
    ``pi * N * n_turns / 2`` grid units.

    Args:
        n_interleaves: spiral arms per partition.
        n_readout: samples per arm.
        n_partitions: number of ``kz`` partitions (unit spacing).
        image_size: in-plane image size ``N``; ``k_max = N/2``.
        n_turns: turns per arm (default Nyquist, as above).
        golden: rotate successive arms by the golden angle (137.51 deg), else by
            ``2*pi/n_interleaves``.

    Returns:
        float32 tensor (n_interleaves, n_partitions, n_readout, 3) in ``[-N/2, N/2)``.
    """
    check_positive_int(n_interleaves, "n_interleaves")
    check_positive_int(n_readout, "n_readout")
    check_positive_int(n_partitions, "n_partitions")
    check_positive_int(image_size, "image_size")
    if n_turns is None:
        n_turns = image_size / (2 * n_interleaves)
    if not (isinstance(n_turns, (int, float)) and math.isfinite(n_turns) and n_turns > 0):
        raise ValueError(f"n_turns must be a positive finite number, got {n_turns!r}")
    step = GOLDEN_ANGLE_CENTRE_OUT if golden else 2 * math.pi / n_interleaves
    rotation = torch.arange(n_interleaves, dtype=torch.float64) * step
    t = _equal_arc_length_parameter(n_readout, 2 * math.pi * n_turns)
    phase = 2 * math.pi * n_turns * t[None, :] + rotation[:, None]
    radius = (image_size / 2) * t[None, :]
    in_plane = torch.stack([radius * torch.sin(phase), radius * torch.cos(phase)], dim=-1)
    return _stack(in_plane, n_partitions, image_size)


def radial_coord(n_spokes: int, n_readout: int, image_shape: Sequence[int]) -> torch.Tensor:
    """Golden-means 3D radial trajectory for a possibly anisotropic grid.

    Spokes are laid out for the largest image size and each axis is scaled to its own size,
    so the trajectory covers ``[-N_d/2, N_d/2)`` along every axis ``d``.

    Returns:
        float32 ``(n_spokes, n_readout, 3)`` in grid units of ``image_shape``.
    """
    image_shape = check_image_shape(image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be 3D (nz, ny, nx), got {image_shape}")
    size = max(image_shape)
    coord = radial_3d(n_spokes, n_readout, image_size=size)
    half = torch.tensor(image_shape, dtype=torch.float32) / 2
    upper = torch.nextafter(half, torch.zeros_like(half))
    return torch.minimum(coord * (2 * half / size), upper)


def radial_spokes(size: int, acceleration: float = 8.0) -> int:
    """Spokes of a 3D radial scan of an ``size``^3 grid undersampled ``acceleration``-fold
    angularly (Nyquist needs about ``pi N^2 / 2`` full spokes)."""
    check_positive_int(size, "size")
    if not (isinstance(acceleration, (int, float)) and acceleration >= 1):
        raise ValueError(f"acceleration must be a number >= 1, got {acceleration!r}")
    return max(1, round(math.pi * size**2 / 2 / acceleration))
