"""SigPy NUFFT on NumPy (CPU tensors) or CuPy (CUDA tensors), sharing memory with torch."""

from __future__ import annotations

import torch

from blockrecon.backend import array_device, from_array, to_array

from .base import NufftBackend, real_dtype_of

#: Grid oversampling of every SigPy transform. SigPy's own default (1.25, with width 4) is
#: accurate to only about 1e-2 against an exact DFT: too coarse to mix with the accurate Toeplitz
#: normal operator in an iterative solver (CG-SENSE lost 20 dB that way).
OVERSAMPLING = 2.0

#: ``(eps, width)``: the narrowest Kaiser-Bessel kernel whose measured relative error against an
#: exact DFT (16^3 grid, random samples, oversampling 2) is below ``eps``: width 4 gives 7.7e-4,
#: 6 gives 8.4e-6, 8 gives 1.8e-7 (complex128; complex64 stops at about 1.4e-6).
KERNEL_WIDTHS = ((1e-3, 4), (1e-5, 6), (0.0, 8))

#: Requested accuracy when none is given, as FINUFFT's complex64 default.
DEFAULT_EPS = 1e-5


def kernel_width(eps: float | None) -> int:
    """Kernel width (grid points) that reaches ``eps`` at :data:`OVERSAMPLING` (8 at most:
    SigPy's Kaiser-Bessel gridding gives no better than about 2e-7)."""
    eps = DEFAULT_EPS if eps is None else eps
    return next(width for bound, width in KERNEL_WIDTHS if eps >= bound)


class SigpyBackend(NufftBackend):
    """Kaiser-Bessel gridding NUFFT from SigPy at oversampling 2, kernel width from ``eps``
    (:func:`kernel_width`; width 6, about 1e-5 relative error, by default)."""

    name = "sigpy"

    def __init__(self, image_shape: tuple[int, ...], eps: float | None = None) -> None:
        super().__init__(image_shape, eps)
        self.width = kernel_width(eps)

    def forward(self, image: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        import sigpy

        coord = coord.to(real_dtype_of(image.dtype))
        with array_device(image):
            return from_array(
                sigpy.nufft(
                    to_array(image), to_array(coord), oversamp=OVERSAMPLING, width=self.width
                )
            )

    def adjoint(self, kspace: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        import sigpy

        coord = coord.to(real_dtype_of(kspace.dtype))
        oshape = (kspace.shape[0], *self.image_shape)
        with array_device(kspace):
            return from_array(
                sigpy.nufft_adjoint(
                    to_array(kspace),
                    to_array(coord),
                    oshape,
                    oversamp=OVERSAMPLING,
                    width=self.width,
                )
            )
