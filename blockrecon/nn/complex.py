"""Complex images <-> real 2-channel tensors, the form networks see.

A complex volume of shape ``(N, *spatial)`` becomes a real tensor ``(N, 2, *spatial)`` whose
channel 0 is the real part and channel 1 the imaginary part; ``complex64`` maps to ``float32``
and ``complex128`` to ``float64``. Both conversions are differentiable and neither keeps a copy
for backward: :func:`complex_to_channels` is a strided view of its input (no copy at all), and
:func:`channels_to_complex` makes one interleaved copy.
"""

from __future__ import annotations

import torch


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(N, *spatial)`` -> real ``(N, 2, *spatial)`` (real, imaginary), a view of ``x``."""
    if not x.is_complex():
        raise ValueError(f"complex_to_channels expects a complex tensor, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError("complex_to_channels expects a tensor with a batch dimension")
    return torch.view_as_real(x.resolve_conj()).movedim(-1, 1)


def channels_to_complex(y: torch.Tensor) -> torch.Tensor:
    """Real ``(N, 2, *spatial)`` (real, imaginary) -> complex ``(N, *spatial)``."""
    if y.is_complex() or y.ndim < 2 or y.shape[1] != 2:
        raise ValueError(
            f"channels_to_complex expects a real tensor (N, 2, *spatial), got {y.dtype} "
            f"of shape {tuple(y.shape)}"
        )
    return torch.view_as_complex(y.movedim(1, -1).contiguous())
