"""Non-uniform FFT as a torch module with an exact autograd backward.

Scaling convention (SigPy's, shared by every backend): for an image ``x`` on the centred grid
``r_d = index_d - N_d // 2`` and coordinates ``k`` in grid units (``-N_d/2 <= k_d <= N_d/2``),

    forward:  y_m = 1/sqrt(prod(N)) * sum_r x_r * exp(-i 2 pi sum_d k_md r_d / N_d)
    adjoint:  x_r = 1/sqrt(prod(N)) * sum_m y_m * exp(+i 2 pi sum_d k_md r_d / N_d)

so that a fully sampled Cartesian grid gives a unitary transform.

Backends: ``"finufft"`` (CPU), ``"cufinufft"`` (CUDA), ``"sigpy"`` (NumPy on CPU, CuPy on CUDA),
``"dft"`` (the exact transform, any device, for verification at small sizes) and ``"auto"`` (the
fastest installed one for the tensor's device: FINUFFT on CPU, cuFINUFFT else SigPy on CUDA).
Every fast backend meets the requested accuracy ``eps`` (relative error against an exact DFT;
default 1e-5 for complex64, 1e-6 for complex128; SigPy reaches about 2e-7 at best), so that a
solver may mix operators from one backend (``E^H y`` from the NUFFT, ``E^H E`` from the Toeplitz
kernel) without their inconsistency dominating the solution. ``benchmarks/bench_nufft_accuracy.py``
measures this.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._nufft import (
    BACKEND_NAMES,
    NufftBackend,
    available_backends,
    check_backend_name,
    make_backend,
    resolve_backend,
)
from .operator import check_normal
from .toeplitz import ToeplitzNormal
from .validation import check_coord, check_image, check_image_shape, check_kspace

__all__ = ["NUFFT", "BACKEND_NAMES", "available_backends", "resolve_backend"]

_COMPLEX_DTYPES = (torch.complex64, torch.complex128)


class _NufftFunction(torch.autograd.Function):
    """``A x`` (``adjoint=False``) or ``A^H y`` (``adjoint=True``); backward applies the other.

    Nothing is saved for backward: the module passed as ``op`` holds the coordinates.
    """

    @staticmethod
    def forward(ctx, data: torch.Tensor, op: NUFFT, adjoint: bool) -> torch.Tensor:
        ctx.op, ctx.adjoint = op, adjoint
        backend = op._backend_for(data)
        apply = backend.adjoint if adjoint else backend.forward
        return apply(data.contiguous(), op._flat_coord)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _NufftFunction.apply(grad, ctx.op, not ctx.adjoint), None, None


class NUFFT(torch.nn.Module):
    """Non-uniform FFT ``A`` from an image grid to k-space samples; a
    :class:`~blockrecon.physics.operator.LinearOperator` without weights (``W = I``).

    Args:
        coord: float tensor ``(..., ndim)``, k-space positions in grid units, each dimension in
            ``[-N_d/2, N_d/2]``. Held as a (non-persistent) buffer: ``.to(device)`` moves it.
        image_shape: ``(N0, N1)`` or ``(N0, N1, N2)``.
        backend: ``"auto"``, ``"finufft"``, ``"cufinufft"``, ``"sigpy"`` or ``"dft"``.
        eps: requested relative accuracy (FINUFFT/cuFINUFFT directly, SigPy through its kernel
            width; ignored by the exact ``"dft"``); ``None`` = the backend's default.
        normal: how :meth:`normal` computes ``A^H A``: ``"toeplitz"`` (kernel built on first
            use) or ``"pair"`` (``adjoint(forward(x))``).

    Shapes: image ``(*batch, *image_shape)`` complex64 (complex128 for gradient checks);
    k-space ``(*batch, *coord.shape[:-1])`` of the same dtype.
    """

    def __init__(
        self,
        coord: torch.Tensor,
        image_shape: Sequence[int],
        *,
        backend: str = "auto",
        eps: float | None = None,
        normal: str = "toeplitz",
    ) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        check_coord(coord, self.image_shape)
        self.backend = check_backend_name(backend)
        if eps is not None and not 0 < eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {eps}")
        self.eps = eps
        self.normal_kind = check_normal(normal)
        self.register_buffer("coord", coord.detach(), persistent=False)
        self._backends: dict[torch.device, NufftBackend] = {}
        self._toeplitz: ToeplitzNormal | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """K-space sample shape ``coord.shape[:-1]``."""
        return tuple(self.coord.shape[:-1])

    @property
    def _flat_coord(self) -> torch.Tensor:
        return self.coord.reshape(-1, len(self.image_shape))

    def extra_repr(self) -> str:
        return (
            f"image_shape={self.image_shape}, samples={self.sample_shape}, backend={self.backend}, "
            f"normal={self.normal_kind}"
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(*batch, *image_shape)`` complex -> ``(*batch, *sample_shape)``."""
        check_image(image, self.image_shape)
        self.check_tensor(image, "image")
        return self.apply_forward(image)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``(*batch, *sample_shape)`` complex -> ``(*batch, *image_shape)``."""
        check_kspace(kspace, self.sample_shape)
        self.check_tensor(kspace, "kspace")
        return self.apply_adjoint(kspace)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``A^H A image`` ``(*batch, *image_shape)``: Toeplitz embedding or NUFFT pair, as
        chosen at construction (``normal=``)."""
        if self.normal_kind == "pair":
            return self.adjoint(self.forward(image))
        self.check_tensor(image, "image")
        if self._toeplitz is None:
            self._toeplitz = ToeplitzNormal(
                self.coord, self.image_shape, backend=self.backend, eps=self.eps
            )
        return self._toeplitz(image)

    def normal_rhs(self, kspace: torch.Tensor) -> torch.Tensor:
        """``A^H y``, the right-hand side matching :meth:`normal` (no weights): the adjoint."""
        return self.adjoint(kspace)

    def apply_forward(self, image: torch.Tensor) -> torch.Tensor:
        """Forward without input checks (for callers that already validated)."""
        ndim = len(self.image_shape)
        batch = image.shape[:-ndim]
        out = _NufftFunction.apply(image.reshape(-1, *self.image_shape), self, False)
        return out.reshape(*batch, *self.sample_shape)

    def apply_adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """Adjoint without input checks (for callers that already validated)."""
        nsample = len(self.sample_shape)
        batch = kspace.shape[: kspace.ndim - nsample]
        out = _NufftFunction.apply(kspace.reshape(-1, self._flat_coord.shape[0]), self, True)
        return out.reshape(*batch, *self.image_shape)

    def __getstate__(self) -> dict:
        """Pickle/deepcopy without the backends: their plans hold C pointers; rebuilt on use."""
        return {**super().__getstate__(), "_backends": {}}

    def check_tensor(self, x: torch.Tensor, name: str) -> None:
        """Raise ValueError unless ``x`` is complex64/128 and on the coordinates' device."""
        if x.dtype not in _COMPLEX_DTYPES:
            raise ValueError(f"{name} must be complex64 or complex128, got {x.dtype}")
        if x.device != self.coord.device:
            raise ValueError(
                f"{name} is on {x.device} but the NUFFT coordinates are on {self.coord.device}; "
                "move the module with .to(device)"
            )

    def _backend_for(self, x: torch.Tensor) -> NufftBackend:
        if x.device not in self._backends:
            self._backends[x.device] = make_backend(
                self.backend, x.device, self.image_shape, self.eps
            )
        return self._backends[x.device]
