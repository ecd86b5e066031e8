"""Interface every private NUFFT backend implements.

A backend is bound to one device and computes, in the SigPy scaling convention,

    forward:  y[b, m] = 1/sqrt(prod(N)) * sum_r x[b, r] * exp(-i 2 pi sum_d k[m, d] r_d / N_d)
    adjoint:  x[b, r] = 1/sqrt(prod(N)) * sum_m y[b, m] * exp(+i 2 pi sum_d k[m, d] r_d / N_d)

with the centred image grid ``r_d = index_d - N_d // 2`` and ``k = coord`` in grid units.
Inputs are flattened: image ``(B, *image_shape)``, k-space ``(B, M)``, coord ``(M, ndim)``,
all on the backend's device; outputs have the input's complex dtype.
"""

from __future__ import annotations

import abc

import torch


class NufftBackend(abc.ABC):
    """A NUFFT implementation for one device; may cache work that depends only on coord."""

    name: str = ""

    def __init__(self, image_shape: tuple[int, ...], eps: float | None = None) -> None:
        self.image_shape = image_shape
        self.eps = eps

    @abc.abstractmethod
    def forward(self, image: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """``(B, *image_shape)`` complex -> ``(B, M)`` complex."""

    @abc.abstractmethod
    def adjoint(self, kspace: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` complex -> ``(B, *image_shape)`` complex."""


def real_dtype_of(dtype: torch.dtype) -> torch.dtype:
    """float32 for complex64, float64 for complex128."""
    return torch.float64 if dtype == torch.complex128 else torch.float32
