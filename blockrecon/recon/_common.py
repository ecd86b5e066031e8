"""Input checks and progress bars shared by the classical reconstructions."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tqdm.auto import tqdm

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


def check_iterations(n_iter: int) -> int:
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    return n_iter


def check_non_negative(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and value >= 0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def progress_bar(iterable: Iterable, desc: str, progress: bool) -> tqdm:
    """tqdm bar, shown only when ``progress`` is true and stderr is a terminal."""
    return tqdm(iterable, desc=desc, disable=not progress or None, leave=False)
