"""FINUFFT (CPU) and cuFINUFFT (GPU) plans, cached per coordinate set, dtype and batch size."""

from __future__ import annotations

import importlib
import math

import torch

from blockrecon.backend import array_device, from_array, to_array

from .base import NufftBackend, real_dtype_of

#: Default requested relative accuracy per precision.
DEFAULT_EPS = {torch.complex64: 1e-5, torch.complex128: 1e-6}

#: Below this many grid values and samples (times the batch) one thread is faster: thread start-up
#: and barriers cost ~1 ms per call, more than a whole small transform (measured ~10 us at 4x5).
SINGLE_THREAD_BELOW = 2**16

_FORWARD, _ADJOINT = 2, 1  # FINUFFT transform types: 2 = uniform -> points, 1 = points -> uniform


class FinufftBackend(NufftBackend):
    """Exponential-of-semicircle kernel NUFFT with accuracy ``eps`` (see ``DEFAULT_EPS``).

    Plans (the point sort included) are built once per (transform type, dtype, batch size) and
    reused while the coordinates stay the same tensor with the same version.
    """

    name = "finufft"
    module_name = "finufft"

    def __init__(self, image_shape: tuple[int, ...], eps: float | None = None) -> None:
        super().__init__(image_shape, eps)
        self._plans: dict[tuple, object] = {}
        self._coord_key: tuple | None = None
        self._points: dict[torch.dtype, list] = {}

    def forward(self, image: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        return self._execute(_FORWARD, image, coord)

    def adjoint(self, kspace: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        return self._execute(_ADJOINT, kspace, coord)

    def _execute(self, nufft_type: int, data: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """Run one plan; the unitary scaling is applied to the k-space side (the smaller one)."""
        scale = 1.0 / math.sqrt(math.prod(self.image_shape))
        if nufft_type == _ADJOINT:
            data = data * scale
        with array_device(data):
            plan = self._plan(nufft_type, data.dtype, data.shape[0], coord)
            out = from_array(plan.execute(to_array(data.contiguous())))
            out = out.reshape(self._out_shape(nufft_type, data, coord))
            return out.mul_(scale) if nufft_type == _FORWARD else out

    def _out_shape(self, nufft_type: int, data: torch.Tensor, coord: torch.Tensor) -> tuple:
        if nufft_type == _FORWARD:
            return (data.shape[0], coord.shape[0])
        return (data.shape[0], *self.image_shape)

    def _plan(self, nufft_type: int, dtype: torch.dtype, n_trans: int, coord: torch.Tensor):
        coord_key = (coord.data_ptr(), coord._version, tuple(coord.shape), coord.device)
        if coord_key != self._coord_key:
            self._plans.clear()
            self._points.clear()
            self._coord_key = coord_key
        key = (nufft_type, dtype, n_trans)
        if key not in self._plans:
            module = importlib.import_module(self.module_name)
            eps = DEFAULT_EPS[dtype] if self.eps is None else self.eps
            isign = -1 if nufft_type == _FORWARD else 1
            plan = module.Plan(
                nufft_type,
                self.image_shape,
                n_trans=n_trans,
                eps=eps,
                isign=isign,
                dtype="complex128" if dtype == torch.complex128 else "complex64",
                **self._thread_options(n_trans, coord.shape[0]),
            )
            plan.setpts(*self._scaled_points(coord, dtype))
            self._plans[key] = plan
        return self._plans[key]

    def _thread_options(self, n_trans: int, n_samples: int) -> dict:
        """All threads (library default) unless the problem is tiny."""
        work = n_trans * max(math.prod(self.image_shape), n_samples)
        return {"nthreads": 1} if work < SINGLE_THREAD_BELOW else {}

    def _scaled_points(self, coord: torch.Tensor, dtype: torch.dtype) -> list:
        """Per-dimension contiguous arrays ``2 pi k_d / N_d`` in radians, kept alive here."""
        if dtype not in self._points:
            real = real_dtype_of(dtype)
            self._points[dtype] = [
                to_array((coord[:, d].to(real) * (2 * math.pi / n)).contiguous())
                for d, n in enumerate(self.image_shape)
            ]
        return self._points[dtype]


class CufinufftBackend(FinufftBackend):
    """cuFINUFFT on CUDA tensors; same plans and scaling as the CPU backend."""

    name = "cufinufft"
    module_name = "cufinufft"

    def _thread_options(self, n_trans: int, n_samples: int) -> dict:
        return {}  # GPU plans have no CPU thread setting
