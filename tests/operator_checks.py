"""Helpers shared by operator tests: adjointness, vjp-equals-adjoint, random data, DFT.

Import them as plain functions (``from operator_checks import assert_adjoint``: pytest puts this
folder on ``sys.path`` when it loads ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch

LinearMap = Callable[[torch.Tensor], torch.Tensor]


def _finufft_importable() -> bool:
    try:
        import finufft  # noqa: F401
    except ImportError:
        return False
    return True


#: NUFFT backends that run on CPU tensors, for ``pytest.mark.parametrize("backend", ...)``;
#: FINUFFT cases are skipped when it is not installed.
CPU_NUFFT_BACKENDS = [
    "sigpy",
    pytest.param(
        "finufft", marks=pytest.mark.skipif(not _finufft_importable(), reason="needs finufft")
    ),
]


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex inner product ``<a, b> = sum(conj(a) * b)`` in double precision."""
    return torch.vdot(a.reshape(-1).to(torch.complex128), b.reshape(-1).to(torch.complex128))


def adjoint_error(
    forward: LinearMap, adjoint: LinearMap, x: torch.Tensor, y: torch.Tensor
) -> float:
    """``|<A x, y> - <x, A^H y>| / (|A x| |y|)``: zero for an exact adjoint pair."""
    ax = forward(x)
    assert ax.shape == y.shape, f"forward output {tuple(ax.shape)} != y {tuple(y.shape)}"
    aty = adjoint(y)
    assert aty.shape == x.shape, f"adjoint output {tuple(aty.shape)} != x {tuple(x.shape)}"
    lhs, rhs = inner(ax, y), inner(x, aty)
    return float(abs(lhs - rhs) / (ax.norm() * y.norm()))


def assert_adjoint(
    forward: LinearMap, adjoint: LinearMap, x: torch.Tensor, y: torch.Tensor, tol: float = 1e-4
) -> None:
    """Assert ``adjoint`` is the adjoint of ``forward`` to relative error ``tol``."""
    err = adjoint_error(forward, adjoint, x, y)
    assert err <= tol, f"adjoint test failed: relative error {err:.3e} > {tol:.1e}"


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``|actual - expected| / |expected|`` (Frobenius norms)."""
    expected = expected.to(actual.dtype)
    return float((actual - expected).norm() / expected.norm())


def assert_vjp_is_adjoint(
    forward: LinearMap, adjoint: LinearMap, x: torch.Tensor, v: torch.Tensor, tol: float = 1e-5
) -> None:
    """Assert the autograd vector-Jacobian product of ``forward`` at ``x`` equals ``adjoint(v)``.

    For a linear ``A`` torch's complex convention gives ``d<v, A x>_R / dx = A^H v``.
    """
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x), x, grad_outputs=v)
    err = relative_error(grad, adjoint(v).detach())
    assert err <= tol, f"vjp differs from adjoint: relative error {err:.3e} > {tol:.1e}"


def random_complex(
    shape: Sequence[int], generator: torch.Generator, dtype: torch.dtype = torch.complex64
) -> torch.Tensor:
    """Standard complex Gaussian tensor."""
    return torch.randn(*shape, dtype=dtype, generator=generator)


def random_coord(
    sample_shape: Sequence[int], image_shape: Sequence[int], generator: torch.Generator
) -> torch.Tensor:
    """Uniform float32 coordinates ``(*sample_shape, ndim)`` inside ``[-N/2, N/2)``."""
    u = torch.rand(*sample_shape, len(image_shape), generator=generator)
    return (u - 0.5) * torch.tensor(image_shape, dtype=torch.float32) * 0.999


def dft_matrix(coord: torch.Tensor, image_shape: Sequence[int]) -> torch.Tensor:
    """Exact NUFFT matrix ``(samples, voxels)`` in the SigPy convention, complex128."""
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in image_shape], indexing="ij")
    r = np.stack(grids, -1).reshape(-1, len(image_shape))
    k = coord.reshape(-1, len(image_shape)).double().numpy() / np.asarray(image_shape)
    phase = np.exp(-2j * np.pi * (k @ r.T)) / np.sqrt(np.prod(image_shape))
    return torch.from_numpy(phase)
