"""The validated SENSE operator shared by the classical reconstructions."""

from __future__ import annotations

import torch

from blockrecon.physics.sense import Sense
from blockrecon.physics.validation import check_coord, check_kspace, check_maps


def sense_operator(
    kspace: torch.Tensor,
    coord: torch.Tensor,
    maps: torch.Tensor,
    weights: torch.Tensor | None = None,
    backend: str = "auto",
) -> Sense:
    """Validate ``(coils, *coord.shape[:-1])`` k-space against coord and maps; build SENSE.

    Raises:
        ValueError: naming the argument whose shape, dtype or values are wrong.
    """
    if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4):
        raise ValueError(
            "maps must be a tensor (coils, *image_shape) for a 2D or 3D image, got "
            f"{tuple(getattr(maps, 'shape', ()))}"
        )
    image_shape = tuple(maps.shape[1:])
    check_maps(maps, image_shape)
    check_coord(coord, image_shape)
    expected = (maps.shape[0], *coord.shape[:-1])
    check_kspace(kspace, expected)
    if kspace.ndim != len(expected):
        raise ValueError(
            f"kspace must have shape (coils, *coord.shape[:-1]) = {expected}, "
            f"got {tuple(kspace.shape)}"
        )
    return Sense(maps.to(torch.complex64), coord, weights=weights, backend=backend)
