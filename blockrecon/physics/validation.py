"""Input checks shared by every layer that hands arrays to the physics operators.

Each check takes a torch tensor (NumPy arrays are accepted too, so that readers of files can use
the same checks), returns nothing useful on success and raises ``ValueError`` with a message that
names the argument and the problem otherwise. The checks only read the data; they never copy a
tensor that is already a torch tensor.

Conventions checked here (see DESIGN.md):

* image shapes are 2D or 3D tuples of positive integers ``(nz, ny, nx)`` / ``(ny, nx)``;
* non-Cartesian coordinates are real, shape ``(..., ndim)`` in image-grid units, with
  ``-N/2 <= coord[..., d] <= N/2`` for the matching image size ``N`` (the closed range, as in
  SigPy and BART: scanner spokes often end exactly at ``+k_max``, which the periodic transform
  treats as ``-N/2``);
* images are complex, shape ``(*batch, *image_shape)``;
* k-space is complex, shape ``(*batch, coils, *sample_shape)``;
* coil maps are complex, shape ``(coils, *image_shape)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "check_image_shape",
    "check_complex",
    "check_real",
    "check_finite",
    "check_coord",
    "check_image",
    "check_kspace",
    "check_maps",
    "check_weights",
    "check_coil_count",
]


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.as_tensor(x)
    raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_image_shape(image_shape: Sequence[int], name: str = "image_shape") -> tuple[int, ...]:
    """Check a 2D or 3D image shape and return it as a tuple of ints.

    Raises:
        ValueError: if it does not have 2 or 3 entries, or an entry is not a positive integer.
    """
    try:
        shape = tuple(image_shape)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of 2 or 3 ints, got {image_shape!r}") from None
    if len(shape) not in (2, 3):
        raise ValueError(f"{name} must have 2 or 3 entries (2D or 3D), got {len(shape)}: {shape}")
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0:
            raise ValueError(f"{name} entries must be positive ints, got {shape}")
    return tuple(int(s) for s in shape)


def check_complex(x: torch.Tensor, name: str) -> None:
    """Raise ValueError unless ``x`` has a complex dtype (complex64 or complex128)."""
    x = _as_tensor(x, name)
    if not x.is_complex():
        raise ValueError(f"{name} must be complex (complex64), got dtype {x.dtype}")


def check_real(x: torch.Tensor, name: str) -> None:
    """Raise ValueError unless ``x`` has a real floating-point dtype."""
    x = _as_tensor(x, name)
    if not x.is_floating_point():
        raise ValueError(f"{name} must be real floating point (float32), got dtype {x.dtype}")


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ValueError if ``x`` holds NaN or Inf (real and imaginary parts both checked)."""
    x = _as_tensor(x, name)
    if x.device.type == "meta":
        return
    values = torch.view_as_real(x) if x.is_complex() else x
    if values.numel() == 0 or bool(torch.isfinite(values.sum())):
        return  # fast path: any NaN/Inf makes the sum non-finite
    bad = int((~torch.isfinite(values)).sum())  # exact count; 0 if only the sum overflowed
    if bad:
        raise ValueError(f"{name} contains {bad} non-finite values (NaN or Inf)")


def _check_trailing_shape(x: torch.Tensor, trailing: Sequence[int], name: str, what: str) -> None:
    trailing = tuple(trailing)
    n = len(trailing)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != trailing:
        raise ValueError(
            f"{name} must have shape (*batch, {_shape_str(trailing)[1:-1]}) ({what}), "
            f"got {_shape_str(x.shape)}"
        )


def check_coord(coord: torch.Tensor, image_shape: Sequence[int], name: str = "coord") -> None:
    """Check non-Cartesian coordinates against an image shape.

    Args:
        coord: real tensor ``(..., ndim)`` in image-grid units.
        image_shape: ``(N_0, ..., N_{ndim-1})``, matching ``coord[..., d]`` to ``N_d``.

    Raises:
        ValueError: if coord is not real, has no sample axis, its last dimension differs from
            ``len(image_shape)``, it holds NaN/Inf, or a value lies outside ``[-N/2, N/2]``.
    """
    shape = check_image_shape(image_shape)
    coord = _as_tensor(coord, name)
    check_real(coord, name)
    if coord.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., {len(shape)}) with at least one sample axis, "
            f"got {_shape_str(coord.shape)}"
        )
    if coord.shape[-1] != len(shape):
        raise ValueError(
            f"{name} last dimension must equal the image dimensionality {len(shape)} "
            f"(image_shape {shape}), got {coord.shape[-1]}"
        )
    check_finite(coord, name)
    if coord.device.type == "meta" or coord.numel() == 0:
        return
    flat = coord.reshape(-1, len(shape))
    lower, upper = flat.amin(dim=0), flat.amax(dim=0)
    for d, n in enumerate(shape):
        lo, hi = float(lower[d]), float(upper[d])
        if lo < -n / 2 or hi > n / 2:
            raise ValueError(
                f"{name}[..., {d}] must lie in [-{n}/2, {n}/2] = [{-n / 2}, {n / 2}] "
                f"for image size {n}, got range [{lo}, {hi}]"
            )


def check_image(x: torch.Tensor, image_shape: Sequence[int], name: str = "image") -> None:
    """Check a complex image ``(*batch, *image_shape)`` with finite values."""
    x = _as_tensor(x, name)
    check_complex(x, name)
    _check_trailing_shape(x, check_image_shape(image_shape), name, "image_shape")
    check_finite(x, name)


def check_kspace(y: torch.Tensor, sample_shape: Sequence[int], name: str = "kspace") -> None:
    """Check complex k-space ``(*batch, *sample_shape)`` with finite values.

    ``sample_shape`` is ``coord.shape[:-1]``; for multi-coil data include the coil axis in it.
    """
    y = _as_tensor(y, name)
    check_complex(y, name)
    _check_trailing_shape(y, sample_shape, name, "sample shape = coord.shape[:-1]")
    check_finite(y, name)


def check_maps(maps: torch.Tensor, image_shape: Sequence[int], name: str = "maps") -> None:
    """Check complex coil maps of shape exactly ``(coils, *image_shape)`` with finite values."""
    maps = _as_tensor(maps, name)
    shape = check_image_shape(image_shape)
    check_complex(maps, name)
    if maps.ndim != len(shape) + 1 or tuple(maps.shape[1:]) != shape:
        raise ValueError(
            f"{name} must have shape (coils, {_shape_str(shape)[1:-1]}), "
            f"got {_shape_str(maps.shape)}"
        )
    check_finite(maps, name)


def check_weights(
    weights: torch.Tensor, sample_shape: Sequence[int], name: str = "weights"
) -> None:
    """Check real, finite, non-negative sample weights that broadcast to ``sample_shape``."""
    weights = _as_tensor(weights, name)
    check_real(weights, name)
    try:
        broadcast = torch.broadcast_shapes(weights.shape, tuple(sample_shape))
    except RuntimeError:
        broadcast = None
    if broadcast != tuple(sample_shape):
        raise ValueError(
            f"{name} shape {_shape_str(weights.shape)} does not broadcast to the sample shape "
            f"{_shape_str(sample_shape)}"
        )
    check_finite(weights, name)
    if weights.device.type != "meta" and bool((weights < 0).any()):
        raise ValueError(f"{name} must be non-negative")


def check_coil_count(
    kspace: torch.Tensor, maps: torch.Tensor, sample_ndim: int | None = None
) -> None:
    """Check that k-space and coil maps have the same number of coils.

    Args:
        kspace: ``(*batch, coils, *sample_shape)``.
        maps: ``(coils, *image_shape)``.
        sample_ndim: ``len(sample_shape)``; the coil axis of kspace is
            ``kspace.ndim - sample_ndim - 1``. ``None`` means the coil axis is the first one.
    """
    kspace = _as_tensor(kspace, "kspace")
    maps = _as_tensor(maps, "maps")
    axis = 0 if sample_ndim is None else kspace.ndim - sample_ndim - 1
    if axis < 0 or kspace.ndim == 0:
        raise ValueError(
            f"kspace must have a coil axis before its {sample_ndim} sample axes, "
            f"got shape {_shape_str(kspace.shape)}"
        )
    if maps.ndim == 0 or kspace.shape[axis] != maps.shape[0]:
        raise ValueError(
            f"coil count mismatch: kspace has {kspace.shape[axis]} coils (axis {axis}) "
            f"but maps has {maps.shape[0] if maps.ndim else 0}"
        )
