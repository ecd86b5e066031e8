"""Toeplitz embedding of the NUFFT normal operator ``A^H W A``.

For the NUFFT ``A`` (SigPy scaling, see :mod:`blockrecon.physics.nufft`) and real sample weights
``W``, ``A^H W A`` is a convolution of the image with the point-spread function

    h(d) = 1/prod(N) * sum_m w_m exp(+i 2 pi sum_j k_mj d_j / N_j),   -N_j < d_j < N_j.

``h`` is computed once as an adjoint NUFFT of the weights onto a grid twice the image size (with
the coordinates doubled), and stored as its FFT on that grid. Applying the operator is then:
zero-pad the image to 2N, FFT, multiply by the kernel, inverse FFT, crop. It is exact up to the
NUFFT's accuracy in building ``h`` and runs in pure torch (CPU or CUDA). The 2N grid is never
formed: the same result comes from ``2^ndim`` FFTs of size N, one per parity of the 2N grid's
frequencies, batched over coils and parities in blocks of at most :data:`WORK_VALUES` values
(:func:`_apply_polyphase`), so a call is a few large operations and no temporary is larger
than a block or the image. For autograd
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
from torch.utils._python_dispatch import _get_current_dispatch_mode

from blockrecon.checks import check_positive_int

from ._nufft import make_backend
from .autograd import SelfAdjointFunction
from .threads import ordered_map, worker_count
from .validation import check_image, check_image_shape, check_weights

__all__ = [
    "toeplitz_kernel",
    "apply_toeplitz",
    "apply_sense_toeplitz",
    "work_split",
    "ToeplitzNormal",
    "WORK_VALUES",
]

#: Automatic work-buffer size of the Toeplitz normal, in values (4 MiB in complex64): as many
#: coils, then parities of the 2N grid, are transformed together as fit in one buffer (at
#: least one image). Buffers of this size are reused by the allocator from call to call; larger
#: ones were mapped afresh on every call here, and their page faults cost as much as the FFTs
#: (measured, one thread: a 64^3 SENSE normal with 8 coils took 0.16 s with 4 MiB blocks and
#: 0.33 s with 32 MiB blocks, 98k page faults a call).
WORK_VALUES = 2**19


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


def _parity_ramps(
    shape: Sequence[int],
    parities: Sequence[tuple[int, ...]],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``r_p(n) = prod_j exp(-i pi p_j n_j / N_j)`` for each parity ``p``: ``(g, *shape)``."""
    ramp = None
    for axis, n in enumerate(shape):
        angle = torch.arange(n, dtype=dtype.to_real(), device=device) * (-math.pi / n)
        angle = angle.new_tensor([parity[axis] for parity in parities])[:, None] * angle
        factor = torch.polar(torch.ones_like(angle), angle)  # (g, n)
        factor = factor.view(len(parities), *(1,) * axis, n, *(1,) * (len(shape) - axis - 1))
        ramp = factor if ramp is None else ramp * factor
    return ramp


def work_split(
    coils: int, image_values: int, ndim: int, buffer_images: int | None = None
) -> tuple[int, int]:
    """``(coils, parities)`` transformed together by the Toeplitz normal.

    One work buffer holds ``coils x parities`` images of ``image_values`` values each: at most
    ``buffer_images`` of them, or with ``None`` as many as fit in :data:`WORK_VALUES` values
    (at least one). Coils are grouped first, then parities of the 2N grid (at most ``2^ndim``).
    """
    if buffer_images is None:
        buffer_images = max(1, WORK_VALUES // max(1, image_values))
    coil_step = min(coils, buffer_images)
    return coil_step, max(1, min(2**ndim, buffer_images // coil_step))


def _apply_polyphase(
    image: torch.Tensor,
    kernel: torch.Tensor,
    maps: torch.Tensor | None = None,
    buffer_images: int | None = None,
) -> torch.Tensor:
    """``sum_c conj(S_c) crop(ifft_2N(K * fft_2N(pad(S_c image))))`` without forming the 2N
    grid (no autograd). ``maps`` ``(coils, *N)``; ``None`` means ``S = I`` (one coil).

    Split each frequency ``k = 2m + p`` of the 2N grid by parity ``p``: the zero-padded FFT at
    ``2m + p`` is the N-point FFT of ``image * r_p`` with the phase ramp
    ``r_p(n) = exp(-i pi p n / N)``, and the cropped inverse FFT is the mean over the
    ``2^ndim`` parities of ``conj(r_p) * ifft_N(K_p * ...)`` with ``K_p = kernel[p::2, ...]``.
    Same FFT work as on the 2N grid, on N-point transforms that stay in cache.

    Coils and parities are processed in blocks (:func:`work_split`): a block's ramped images
    times its maps form one buffer ``(g, *batch, c, *N)``, transformed by one batched FFT,
    multiplied by the real ``K_p`` in place, transformed back, and reduced over coils and
    parities in a few in-place operations (:func:`_parity_group_term`). Memory is the result
    plus about two buffers of ``g * c`` images per group in flight (``buffer_images=1``:
    image-sized temporaries only). Sizes below :data:`WORK_VALUES` also let the allocator
    reuse freed buffers instead of mapping fresh pages on every call.

    Without ``buffer_images`` on the CPU, the parity groups are shared out to
    ``torch.get_num_threads()`` concurrent workers
    (:func:`~blockrecon.physics.threads.ordered_map`) and summed in order, so that the cores
    stay busy while one group waits at an operation's barrier (on 2 shared cores at load
    average 6, a 32^3 SENSE normal with 8 coils took 0.70 s with the groups one after another
    and 0.04 s on 2 workers). An explicit ``buffer_images`` (a memory bound) or an active
    dispatch mode (a memory or tracing tool,
    which sees only its own thread) runs the groups here, one at a time.
    """
    ndim = kernel.ndim
    coils = 1 if maps is None else maps.shape[0]
    coil_step, parity_step = work_split(coils, image.numel(), ndim, buffer_images)
    parities = list(itertools.product((0, 1), repeat=ndim))
    groups = [parities[first : first + parity_step] for first in range(0, 2**ndim, parity_step)]
    workers = 1
    if buffer_images is None and _get_current_dispatch_mode() is None:
        workers = worker_count(image.device)
    terms = ordered_map(
        partial(_parity_group_term, image, kernel, maps, coil_step), groups, workers
    )
    out_conj = next(terms)
    for term in terms:
        out_conj.add_(term)
    return torch.conj_physical_(out_conj).div_(2**ndim)


def _parity_group_term(
    image: torch.Tensor,
    kernel: torch.Tensor,
    maps: torch.Tensor | None,
    coil_step: int,
    group: Sequence[tuple[int, ...]],
) -> torch.Tensor:
    """``conj(sum_{p in group} conj(r_p) sum_c conj(S_c) ifft_N(K_p fft_N(r_p S_c image)))``,
    image-shaped; coils ``coil_step`` at a time (see :func:`_apply_polyphase`). The result is
    accumulated conjugated (``sum S_c conj(z_c)``), so that no conjugated copy of the maps is
    made."""
    ndim = kernel.ndim
    shape = image.shape[-ndim:]
    dims = tuple(range(-ndim, 0))
    lead = (1,) * (image.ndim - ndim)  # the image's batch axes
    coils = 1 if maps is None else maps.shape[0]
    ramps = _parity_ramps(shape, group, image.dtype, image.device)
    ramps = ramps.view(len(group), *lead, *shape)
    ramped = image * ramps  # (g, *batch, *N)
    weights = torch.stack([kernel[tuple(slice(p, None, 2) for p in par)] for par in group])
    weights = weights.view(len(group), *lead, *shape)  # K_p, contiguous
    combined = None  # sum_c S_c conj(z_c), (g, *batch, *N)
    for start in range(0, coils, coil_step):
        if maps is None:
            spectrum = torch.fft.fftn(ramped, dim=dims)
            spectrum.mul_(weights)
        else:
            block = maps[start : start + coil_step]
            spectrum = torch.fft.fftn(ramped.unsqueeze(-ndim - 1) * block, dim=dims)
            spectrum.mul_(weights.unsqueeze(-ndim - 1))
        filtered = torch.fft.ifftn(spectrum, dim=dims)
        del spectrum
        filtered.conj_physical_()
        if maps is not None:
            filtered = filtered.mul_(block).sum(dim=-ndim - 1)
        combined = filtered if combined is None else combined.add_(filtered)
        del filtered
    return combined.mul_(ramps).sum(dim=0)  # conj(sum_p conj(r_p) ...)


def apply_toeplitz(
    image: torch.Tensor, kernel: torch.Tensor, *, buffer_images: int | None = None
) -> torch.Tensor:
    """Apply ``A^H W A`` to ``image`` ``(*batch, *N)`` given ``kernel = toeplitz_kernel(...)``.

    The kernel is cast to the image's real precision; the result has the image's dtype.
    Autograd sees one node that saves nothing
    (:class:`~blockrecon.physics.autograd.SelfAdjointFunction`), and the 2N grid
    is never formed (see :func:`_apply_polyphase`): memory is the result and about two work
    buffers of ``buffer_images`` images each (``None``: within :data:`WORK_VALUES` values).
    """
    kernel = kernel.to(device=image.device, dtype=image.real.dtype)
    if buffer_images is not None:
        check_positive_int(buffer_images, "buffer_images")
    return SelfAdjointFunction.apply(
        image, partial(_apply_polyphase, kernel=kernel, buffer_images=buffer_images)
    )


def apply_sense_toeplitz(
    image: torch.Tensor,
    kernel: torch.Tensor,
    maps: torch.Tensor,
    *,
    buffer_images: int | None = None,
) -> torch.Tensor:
    """SENSE normal ``sum_c conj(S_c) A^H W A (S_c image)`` of ``image`` ``(*batch, *N)``.

    ``maps`` ``(coils, *N)``. Autograd sees one node that saves nothing (the maps are
    constants here); memory is the result and about two work buffers of ``buffer_images``
    images each, coils and parities of the 2N grid grouped to fill them (``None``: within
    :data:`WORK_VALUES` values; see :func:`_apply_polyphase`).
    """
    kernel = kernel.to(device=image.device, dtype=image.real.dtype)
    if buffer_images is not None:
        check_positive_int(buffer_images, "buffer_images")
    return SelfAdjointFunction.apply(
        image,
        partial(_apply_polyphase, kernel=kernel, maps=maps, buffer_images=buffer_images),
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
