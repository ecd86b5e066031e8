"""SigPy NUFFT on NumPy (CPU tensors) or CuPy (CUDA tensors), sharing memory with torch."""

from __future__ import annotations

import torch

from blockrecon.backend import array_device, from_array, to_array

from .base import NufftBackend, real_dtype_of


class SigpyBackend(NufftBackend):
    """Kaiser-Bessel gridding NUFFT from SigPy (oversampling 1.25, kernel width 4).

    Accuracy against an exact DFT is about 1e-3 (forward) and 8e-3 (adjoint) relative;
    ``eps`` is ignored.
    """

    name = "sigpy"

    def forward(self, image: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        import sigpy

        coord = coord.to(real_dtype_of(image.dtype))
        with array_device(image):
            return from_array(sigpy.nufft(to_array(image), to_array(coord)))

    def adjoint(self, kspace: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        import sigpy

        coord = coord.to(real_dtype_of(kspace.dtype))
        oshape = (kspace.shape[0], *self.image_shape)
        with array_device(kspace):
            return from_array(sigpy.nufft_adjoint(to_array(kspace), to_array(coord), oshape))
