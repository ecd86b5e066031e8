"""Toeplitz normal operator: equals the exact and the NUFFT-pair normal, self-adjoint, autograd."""

import pytest
import torch
from operator_checks import (
    CPU_NUFFT_BACKENDS,
    assert_adjoint,
    assert_vjp_is_adjoint,
    dft_matrix,
    random_complex,
    random_coord,
    relative_error,
)

from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.toeplitz import ToeplitzNormal, apply_toeplitz, toeplitz_kernel

SHAPES = [(9, 12), (6, 7, 5)]
#: kernel error against the exact normal: FINUFFT eps 1e-6 (double), SigPy's default kernel
EXACT_TOL = {"sigpy": 1e-2, "finufft": 1e-6}


def _weights(coord, rng):
    return torch.rand(coord.shape[:-1], generator=rng, dtype=torch.float64)


@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
@pytest.mark.parametrize("image_shape", SHAPES)
def test_matches_exact_normal(backend, image_shape, rng):
    coord = random_coord((5, 30), image_shape, rng)
    weights = _weights(coord, rng)
    x = random_complex((2, *image_shape), rng, torch.complex128)
    a = dft_matrix(coord, image_shape)
    exact = ((x.reshape(2, -1) @ a.T) * weights.reshape(-1)) @ a.conj()
    normal = ToeplitzNormal(coord, image_shape, weights, backend=backend)
    assert relative_error(normal(x), exact.reshape(x.shape)) < EXACT_TOL[backend]


@pytest.mark.parametrize("image_shape", SHAPES)
def test_nufft_normal_matches_pair(image_shape, rng):
    coord = random_coord((5, 30), image_shape, rng)
    x = random_complex((3, *image_shape), rng)
    op, pair = NUFFT(coord, image_shape), NUFFT(coord, image_shape, normal="pair")
    toeplitz = op.normal(x)
    assert toeplitz.shape == x.shape and toeplitz.dtype == x.dtype
    assert relative_error(toeplitz, pair.normal(x)) < 1e-3


@pytest.mark.parametrize("image_shape", SHAPES)
def test_self_adjoint_and_autograd(image_shape, rng):
    coord = random_coord((40,), image_shape, rng)
    normal = ToeplitzNormal(coord, image_shape, _weights(coord, rng))
    x, y = (random_complex(image_shape, rng) for _ in range(2))
    assert_adjoint(normal, normal, x, y, tol=1e-6)
    assert_vjp_is_adjoint(normal, normal, x, y)


def test_kernel_is_real_on_doubled_grid_and_cached(rng):
    coord = random_coord((50,), (6, 8), rng)
    kernel = toeplitz_kernel(coord, (6, 8))
    assert kernel.shape == (12, 16) and not kernel.is_complex()
    # PSF at the centre (d = 0) is sum(w)/prod(N); mean of the kernel's FFT equals h(0)
    assert kernel.mean().item() == pytest.approx(50 / 48, rel=1e-5)
    normal = ToeplitzNormal(coord, (6, 8))
    assert normal.kernel() is normal.kernel()
    assert normal.kernel(torch.float64).dtype == torch.float64


def test_apply_keeps_batch_and_rejects_bad_image(rng):
    coord = random_coord((50,), (6, 8), rng)
    normal = ToeplitzNormal(coord, (6, 8))
    x = random_complex((2, 3, 6, 8), rng)
    out = normal(x)
    assert torch.allclose(out[1, 2], apply_toeplitz(x[1, 2], normal.kernel()), atol=1e-6)
    with pytest.raises(ValueError, match="image must be complex"):
        normal(x.real)
    with pytest.raises(ValueError, match="image must have shape"):
        normal(x[..., :5])
    with pytest.raises(ValueError, match="weights shape"):
        toeplitz_kernel(coord, (6, 8), torch.ones(49))


def _zero_padded_reference(image, kernel):
    """The definition: zero-pad to 2N, FFT, multiply by the kernel, inverse FFT, crop."""
    dims = tuple(range(-kernel.ndim, 0))
    spectrum = torch.fft.fftn(image, s=kernel.shape, dim=dims) * kernel
    out = torch.fft.ifftn(spectrum, dim=dims)
    return out[(..., *(slice(0, n) for n in image.shape[-kernel.ndim :]))]


@pytest.mark.parametrize("image_shape", SHAPES)
def test_polyphase_equals_zero_padded_grid(image_shape, rng):
    kernel = torch.rand([2 * n for n in image_shape], generator=rng, dtype=torch.float64)
    x = random_complex((2, *image_shape), rng, torch.complex128)
    assert relative_error(apply_toeplitz(x, kernel), _zero_padded_reference(x, kernel)) < 1e-13


def test_backward_is_the_operator_and_saves_nothing(rng):
    coord = random_coord((30,), (4, 3, 5), rng).double()
    normal = ToeplitzNormal(coord, (4, 3, 5), _weights(coord, rng))
    x = random_complex((4, 3, 5), rng, torch.complex128).requires_grad_(True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        out = normal(x)
    assert all(t.numel() <= 1 for t in packed)  # only the input check's scalar
    v = random_complex(out.shape, rng, torch.complex128)
    (grad,) = torch.autograd.grad(out, x, v)
    assert relative_error(grad, normal(v).detach()) < 1e-14
    assert torch.autograd.gradcheck(normal, (x,), eps=1e-6, atol=1e-6)
