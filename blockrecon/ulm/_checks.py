"""Validation of the arrays that enter the public functions of ``blockrecon.ulm``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def check_iq(iq: torch.Tensor, name: str = "iq") -> np.ndarray:
    """Check a complex ``(frames, *spatial)`` tensor with 2 or 3 spatial axes; return it as a
    NumPy complex64 array (no copy for a CPU complex64 tensor)."""
    if not isinstance(iq, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(iq).__name__}")
    if not iq.is_complex():
        raise ValueError(f"{name} must be complex (complex64), got {iq.dtype}")
    if iq.ndim not in (3, 4):
        raise ValueError(
            f"{name} must have shape (frames, nz, nx) or (frames, nz, ny, nx), "
            f"got {tuple(iq.shape)}"
        )
    if iq.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(iq.shape)}")
    array = iq.detach().cpu().to(torch.complex64).resolve_conj().numpy()
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values (NaN or Inf)")
    return array


def check_points(
    positions: torch.Tensor, frames: torch.Tensor, ndim: int | None, name: str = "positions"
) -> tuple[np.ndarray, np.ndarray]:
    """Check a point table: positions ``(n, ndim)`` finite floats and frames ``(n,)`` non-negative
    integers. Returns float64 positions and int64 frames as NumPy arrays."""
    for label, value in ((name, positions), (f"frames of {name}", frames)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{label} must be a torch.Tensor, got {type(value).__name__}")
    if (
        positions.ndim != 2
        or positions.shape[1] not in (2, 3)
        or (ndim is not None and positions.shape[1] != ndim)
    ):
        expected = f"(n, {ndim})" if ndim else "(n, 2) or (n, 3)"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(positions.shape)}")
    if positions.is_complex() or not bool(torch.isfinite(positions).all()):
        raise ValueError(f"{name} must be real and finite")
    if frames.shape != (positions.shape[0],):
        raise ValueError(
            f"frames of {name} must have shape ({positions.shape[0]},), got {tuple(frames.shape)}"
        )
    if frames.is_floating_point() or frames.is_complex() or bool((frames < 0).any()):
        raise ValueError(f"frames of {name} must be non-negative integers")
    return (
        positions.detach().cpu().numpy().astype(np.float64),
        frames.detach().cpu().numpy().astype(np.int64),
    )


def check_per_axis(name: str, value: float | Sequence[float], ndim: int) -> np.ndarray:
    """One positive finite value per axis, from a scalar (repeated) or a sequence of ``ndim``."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.shape == (1,):
        values = np.repeat(values, ndim)
    if values.shape != (ndim,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name} must be one positive number or {ndim} of them, got {value}")
    return values
