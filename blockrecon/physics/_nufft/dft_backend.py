"""Exact non-uniform DFT in pure torch: the reference the fast backends are measured against.

Costs ``O(samples x voxels)`` per transform, so it is meant for verification at small sizes
(a 32^3 image and 13k samples take about a second on a CPU core). The exponential is separable
over the image axes, ``exp(-i 2 pi k.r / N) = prod_d exp(-i 2 pi k_d r_d / N_d)``, so each chunk
of samples is contracted one axis at a time and no ``samples x voxels`` matrix is formed.
Computed in complex128 on the input's device; the result has the input's dtype.
"""

from __future__ import annotations

import math

import torch

from .base import NufftBackend

#: Samples per chunk: bounds the temporaries to ``batch x SAMPLE_CHUNK x voxels / N_0`` values.
SAMPLE_CHUNK = 256


class DftBackend(NufftBackend):
    """Exact transform in the shared scaling convention; ``eps`` is ignored."""

    name = "dft"

    def forward(self, image: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        x = image.to(torch.complex128)
        chunks = []
        for start in range(0, coord.shape[0], SAMPLE_CHUNK):
            factors = self._factors(coord[start : start + SAMPLE_CHUNK])
            t = torch.einsum("mi,bi...->bm...", factors[0], x)
            for factor in factors[1:]:
                t = torch.einsum("mj,bmj...->bm...", factor, t)
            chunks.append(t)
        return (torch.cat(chunks, dim=1) * self._scale()).to(image.dtype)

    def adjoint(self, kspace: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        y = kspace.to(torch.complex128)
        out = torch.zeros((y.shape[0], *self.image_shape), dtype=torch.complex128, device=y.device)
        for start in range(0, coord.shape[0], SAMPLE_CHUNK):
            factors = [f.conj() for f in self._factors(coord[start : start + SAMPLE_CHUNK])]
            t = y[:, start : start + SAMPLE_CHUNK]
            for factor in reversed(factors[1:]):
                t = torch.einsum("mj,bm...->bmj...", factor, t)
            out += torch.einsum("mi,bm...->bi...", factors[0], t)
        return (out * self._scale()).to(kspace.dtype)

    def _factors(self, coord: torch.Tensor) -> list[torch.Tensor]:
        """Per axis ``d``: ``exp(-i 2 pi k_md r_d / N_d)``, complex128 ``(samples, N_d)``."""
        factors = []
        for d, n in enumerate(self.image_shape):
            r = torch.arange(n, dtype=torch.float64, device=coord.device) - n // 2
            angle = coord[:, d, None].to(torch.float64) * r * (-2 * math.pi / n)
            factors.append(torch.polar(torch.ones_like(angle), angle))
        return factors

    def _scale(self) -> float:
        return 1.0 / math.sqrt(math.prod(self.image_shape))
