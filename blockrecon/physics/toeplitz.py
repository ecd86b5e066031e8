"""Toeplitz embedding of the NUFFT normal operator ``A^H W A``.

For the NUFFT ``A`` (SigPy scaling, see :mod:`blockrecon.physics.nufft`) and real sample weights
``W``, ``A^H W A`` is a convolution of the image with the point-spread function

    h(d) = 1/prod(N) * sum_m w_m exp(+i 2 pi sum_j k_mj d_j / N_j),   -N_j < d_j < N_j.

``h`` is computed once as an adjoint NUFFT of the weights onto a grid twice the image size (with
the coordinates doubled), and stored as its FFT on that grid. Applying the operator is then:
zero-pad the image to 2N, FFT, multiply by the kernel, inverse FFT, crop. It is exact up to the
NUFFT's accuracy in building ``h`` and runs in pure torch (CPU or CUDA). The 2N grid is never
formed: the same result comes from ``2^ndim`` FFTs of size N, one per parity of the 2N grid's
frequencies, so every temporary has the image's size (:func:`apply_toeplitz`). For autograd
the operator is one node whose backward is the operator itself (self-adjoint and linear),
saving nothing.

Because the weights are real, ``h`` is Hermitian and its FFT is real: the kernel is stored as a
real tensor, halving its memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import partial

import torch

from ._nufft import make_backend
from .autograd import SelfAdjointFunction
from .validation import check_image, check_image_shape, check_weights

__all__ = ["toeplitz_kernel", "apply_toeplitz", "apply_sense_toeplitz", "ToeplitzNormal"]


def toeplitz_kernel(
    coord: torch.Tensor,
    image_shape: Sequence[int],
    weights: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    eps: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """FFT of the normal operator's point-spread function on the 2x grid.

    Args:
        coord: float tensor ``(..., ndim)`` in image-grid units, already validated.
        image_shape: ``N`` (2D or 3D).
        weights: optional real, non-negative tensor broadcastable to ``coord.shape[:-1]``.
        backend: NUFFT backend used for the PSF (computed once).
        eps: NUFFT accuracy for that computation (backend default when None).
        dtype: float32 or float64: precision of the PSF computation and of the result.

    Returns:
        real tensor of shape ``2N`` in ``dtype``, on the device of coord.
    """
    shape = check_image_shape(image_shape)
    samples = coord.reshape(-1, len(shape))
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    if weights is None:
        w = torch.ones(samples.shape[0], dtype=complex_dtype, device=coord.device)
    else:
        check_weights(weights, coord.shape[:-1])
        w = weights.detach().expand(coord.shape[:-1]).reshape(-1).to(complex_dtype)
    grid = tuple(2 * n for n in shape)
    w = w * (math.sqrt(math.prod(grid)) / math.prod(shape))  # adjoint scaling -> h(d)
    psf = make_backend(backend, coord.device, grid, eps).adjoint(w[None], 2 * samples)[0]
    for axis in range(len(shape)):  # drop d = -N: unused, and it breaks Hermitian symmetry
        psf.select(axis, 0).zero_()
    dims = tuple(range(len(shape)))
    spectrum = torch.fft.fftn(torch.fft.ifftshift(psf, dim=dims), dim=dims)
    return spectrum.real.contiguous()  # a copy, so the complex spectrum is freed


def _phase_ramps(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> list:
    """``exp(-i pi n / N_j)`` for ``n < N_j``, shaped to broadcast along the last ``len(shape)``
    axes (axis ``j`` of ``shape``)."""
    ramps = []
    for axis, n in enumerate(shape):
        angle = torch.arange(n, dtype=dtype.to_real(), device=device) * (-math.pi / n)
        ramps.append(
            torch.polar(torch.ones_like(angle), angle).view(n, *(1,) * (len(shape) - axis - 1))
        )
    return ramps


def _filter_parity(
    shifted: torch.Tensor,
    spectrum: torch.Tensor,
    kernel: torch.Tensor,
    parity: tuple[int, ...],
    ramps: list,
) -> None:
    """One parity's term of the polyphase convolution, in place on ``shifted`` (the input,
    then the output), ``spectrum`` a work buffer of the same shape (see
    :func:`_apply_polyphase`)."""
    dims = tuple(range(-kernel.ndim, 0))
    odd = [ramp for ramp, p in zip(ramps, parity, strict=True) if p]
    for ramp in odd:
        shifted.mul_(ramp)
    torch.fft.fftn(shifted, dim=dims, out=spectrum)
    real_kernel = kernel[tuple(slice(p, None, 2) for p in parity)].unsqueeze(-1)
    torch.view_as_real(spectrum).mul_(real_kernel)  # no complex copy of the kernel
    torch.fft.ifftn(spectrum, dim=dims, out=shifted)
    for ramp in odd:
        shifted.mul_(ramp.conj())


def _apply_polyphase(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``crop(ifft_2N(K * fft_2N(pad(image))))`` without forming the 2N grid (no autograd).

    Split each frequency ``k = 2m + p`` of the 2N grid by parity ``p``: the zero-padded FFT at
    ``2m + p`` is the N-point FFT of ``image * exp(-i pi p n / N)``, and the cropped inverse
    FFT is the mean over the ``2^ndim`` parities of ``exp(+i pi p n / N) * ifft_N(K_p * ...)``
    with ``K_p = kernel[p::2, ...]``. Same FLOPs as the 2N grid, but every temporary has the
    image's size: three image-sized tensors (the result and two work buffers) instead of two
    2N grids (8x each in 3D).
    """
    ramps = _phase_ramps(image.shape[-kernel.ndim :], image.dtype, image.device)
    out = torch.zeros_like(image)
    shifted, spectrum = torch.empty_like(image), torch.empty_like(image)  # reused per parity
    for parity in itertools.product((0, 1), repeat=kernel.ndim):
        _filter_parity(shifted.copy_(image), spectrum, kernel, parity, ramps)
        out.add_(shifted)
    return out.div_(2**kernel.ndim)


def _apply_sense_polyphase(
    image: torch.Tensor, kernel: torch.Tensor, coil_chunks: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``sum_c conj(S_c) T(S_c image)`` with ``T`` as in :func:`_apply_polyphase` (no autograd).

    Each chunk's coil images ``(*batch, c, *N)`` are made inside the two work buffers and added
    into the result, so no other temporary is made. The result holds the conjugate of the sum
    until the end (``sum_c S_c conj(z_c)``), so no conjugated copy of the maps is made.
    """
    ramps = _phase_ramps(image.shape[-kernel.ndim :], image.dtype, image.device)
    coil_axis = image.ndim - kernel.ndim
    out = torch.zeros_like(image)
    for maps in coil_chunks:
        shifted = torch.empty(
            (*image.shape[:coil_axis], *maps.shape), dtype=image.dtype, device=image.device
        )
        spectrum = torch.empty_like(shifted)  # both reused per parity
        for parity in itertools.product((0, 1), repeat=kernel.ndim):
            torch.mul(image.unsqueeze(coil_axis), maps, out=shifted)
            _filter_parity(shifted, spectrum, kernel, parity, ramps)
            for coil_image in torch.conj_physical_(shifted).mul_(maps).unbind(coil_axis):
                out.add_(coil_image)
        del shifted, spectrum, coil_image  # freed before the next chunk's buffers are made
    return torch.conj_physical_(out).div_(2**kernel.ndim)


def apply_toeplitz(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Apply ``A^H W A`` to ``image`` ``(*batch, *N)`` given ``kernel = toeplitz_kernel(...)``.

    The kernel is cast to the image's real precision; the result has the image's dtype.
    Autograd sees one node that saves nothing
    (:class:`~blockrecon.physics.autograd.SelfAdjointFunction`), and the 2N grid
    is never formed (see :func:`_apply_polyphase`): memory is a few image-sized temporaries.
    """
    kernel = kernel.to(device=image.device, dtype=image.real.dtype)
    return SelfAdjointFunction.apply(image, partial(_apply_polyphase, kernel=kernel))


def apply_sense_toeplitz(
    image: torch.Tensor, kernel: torch.Tensor, coil_chunks: Sequence[torch.Tensor]
) -> torch.Tensor:
    """SENSE normal ``sum_c conj(S_c) A^H W A (S_c image)`` of ``image`` ``(*batch, *N)``.

    ``coil_chunks`` are the coil maps in chunks ``(c, *N)`` processed together. Autograd sees
    one node that saves nothing (the maps are constants here); memory is the result and two
    work buffers of ``c`` images each (see :func:`_apply_sense_polyphase`).
    """
    kernel = kernel.to(device=image.device, dtype=image.real.dtype)
    return SelfAdjointFunction.apply(
        image, partial(_apply_sense_polyphase, kernel=kernel, coil_chunks=tuple(coil_chunks))
    )


class ToeplitzNormal(torch.nn.Module):
    """``A^H W A`` as a module; the kernel is built on first use per device and cached.

    Args:
        coord: ``(..., ndim)`` float coordinates in grid units (validated by the caller).
        image_shape: ``N``.
        weights: optional real sample weights broadcastable to ``coord.shape[:-1]``.
        backend, eps: NUFFT used to build the kernel.
    """

    def __init__(
        self,
        coord: torch.Tensor,
        image_shape: Sequence[int],
        weights: torch.Tensor | None = None,
        *,
        backend: str = "auto",
        eps: float | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        self.backend = backend
        self.eps = eps
        self.register_buffer("coord", coord.detach(), persistent=False)
        self.register_buffer(
            "weights", None if weights is None else weights.detach(), persistent=False
        )
        self._kernels: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def kernel(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The real kernel ``2N`` in ``dtype`` on the coordinates' device (built once, cached)."""
        key = (self.coord.device, dtype)
        if key not in self._kernels:
            self._kernels[key] = toeplitz_kernel(
                self.coord,
                self.image_shape,
                self.weights,
                backend=self.backend,
                eps=self.eps,
                dtype=dtype,
            )
        return self._kernels[key]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(*batch, *N)`` complex -> same shape: ``A^H W A image``."""
        check_image(image, self.image_shape)
        return apply_toeplitz(image, self.kernel(image.real.dtype))
