"""NUFFT: adjointness, autograd, accuracy against an exact DFT, backend agreement, bad input."""

import copy
import io

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

from blockrecon.backend import has_cufinufft, has_finufft
from blockrecon.physics.nufft import NUFFT

SHAPES = [(10, 12), (6, 8, 5)]
#: relative error against an exact DFT (complex64, these sizes), with headroom: both backends at
#: their default eps 1e-5 (SigPy: oversampling 2, kernel width 6). SigPy's own default kernel
#: (oversampling 1.25, width 4: about 1e-2) fails this.
DFT_TOL = {
    "sigpy": {"forward": 5e-5, "adjoint": 5e-5},
    "finufft": {"forward": 5e-5, "adjoint": 5e-5},
}


def _problem(image_shape, rng, batch=(2,), samples=(3, 40), dtype=torch.complex64):
    coord = random_coord(samples, image_shape, rng)
    x = random_complex((*batch, *image_shape), rng, dtype)
    y = random_complex((*batch, *samples), rng, dtype)
    return coord, x, y


@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
@pytest.mark.parametrize("image_shape", SHAPES)
def test_adjoint(backend, image_shape, rng):
    coord, x, y = _problem(image_shape, rng)
    op = NUFFT(coord, image_shape, backend=backend)
    assert op(x).shape == y.shape and op(x).dtype == torch.complex64
    assert_adjoint(op.forward, op.adjoint, x, y, tol=1e-4)


@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
@pytest.mark.parametrize("image_shape", SHAPES)
def test_matches_exact_dft(backend, image_shape, rng):
    coord, x, y = _problem(image_shape, rng)
    op = NUFFT(coord, image_shape, backend=backend)
    a = dft_matrix(coord, image_shape)
    exact_y = (x.reshape(2, -1).to(torch.complex128) @ a.T).reshape(y.shape)
    exact_x = (y.reshape(2, -1).to(torch.complex128) @ a.conj()).reshape(x.shape)
    assert relative_error(op(x), exact_y) < DFT_TOL[backend]["forward"]
    assert relative_error(op.adjoint(y), exact_x) < DFT_TOL[backend]["adjoint"]


@pytest.mark.skipif(not has_finufft(), reason="finufft not installed")
@pytest.mark.parametrize("image_shape", SHAPES)
def test_backends_agree_and_double_precision(image_shape, rng):
    coord, x, y = _problem(image_shape, rng, dtype=torch.complex128)
    a = dft_matrix(coord, image_shape)
    exact_y = (x.reshape(2, -1) @ a.T).reshape(y.shape)
    finufft_y = NUFFT(coord, image_shape, backend="finufft")(x)
    assert finufft_y.dtype == torch.complex128
    assert relative_error(finufft_y, exact_y) < 5e-6
    sigpy_y = NUFFT(coord, image_shape, backend="sigpy")(x)
    assert relative_error(sigpy_y, finufft_y) < DFT_TOL["sigpy"]["forward"]
    tight = NUFFT(coord, image_shape, backend="finufft", eps=1e-10)(x)
    assert relative_error(tight, exact_y) < 1e-8
    tight_sigpy = NUFFT(coord, image_shape, backend="sigpy", eps=1e-7)(x)
    assert relative_error(tight_sigpy, exact_y) < 1e-6


@pytest.mark.parametrize("backend", [*CPU_NUFFT_BACKENDS, "dft"])
def test_edge_sample_at_plus_half_equals_minus_half(backend, rng):
    """The closed coordinate range: ``+N/2`` is the periodic twin of ``-N/2`` on every backend."""
    image_shape = (6, 8, 5)
    coord = random_coord((30,), image_shape, rng)
    coord[:10, 1] = 4.0
    twin = coord.clone()
    twin[:10, 1] = -4.0
    x = random_complex((1, *image_shape), rng)
    at_plus, at_minus = (NUFFT(c, image_shape, backend=backend)(x) for c in (coord, twin))
    assert relative_error(at_plus, at_minus) < 1e-5


@pytest.mark.parametrize("image_shape", SHAPES)
def test_dft_backend_is_exact(image_shape, rng):
    coord, x, y = _problem(image_shape, rng, dtype=torch.complex128)
    op = NUFFT(coord, image_shape, backend="dft")
    a = dft_matrix(coord, image_shape)
    assert relative_error(op(x), (x.reshape(2, -1) @ a.T).reshape(y.shape)) < 1e-13
    assert relative_error(op.adjoint(y), (y.reshape(2, -1) @ a.conj()).reshape(x.shape)) < 1e-13
    assert op(x.to(torch.complex64)).dtype == torch.complex64


def test_auto_picks_fastest_cpu_backend(rng):
    coord, x, _ = _problem((8, 8), rng)
    op = NUFFT(coord, (8, 8))
    op(x)
    assert op._backend_for(x).name == ("finufft" if has_finufft() else "sigpy")


@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
@pytest.mark.parametrize("image_shape", SHAPES)
def test_autograd_is_adjoint(backend, image_shape, rng):
    coord, x, y = _problem(image_shape, rng)
    op = NUFFT(coord, image_shape, backend=backend)
    assert_vjp_is_adjoint(op.forward, op.adjoint, x, y)
    assert_vjp_is_adjoint(op.adjoint, op.forward, y, x)


@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
def test_gradcheck_double(backend, rng):
    coord, x, y = _problem((4, 5), rng, batch=(), samples=(6,), dtype=torch.complex128)
    op = NUFFT(coord.double(), (4, 5), backend=backend)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(op.forward, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(op.adjoint, (y,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(op.forward, (x,), eps=1e-6, atol=1e-5)


def test_batch_shapes_and_plan_reuse(rng):
    coord, x, _ = _problem((8, 6), rng, batch=(2, 3))
    op = NUFFT(coord, (8, 6))
    y = op(x)
    assert y.shape == (2, 3, 3, 40)
    assert torch.allclose(op(x[1, 2]), y[1, 2], atol=1e-6)
    assert op.adjoint(y).shape == x.shape
    assert torch.equal(op(x), y)  # cached plans give identical results


def test_copy_and_save_after_use(rng):
    coord, x, _ = _problem((8, 6), rng)
    op = NUFFT(coord, (8, 6))
    y, normal = op(x), op.normal(x)
    clone = copy.deepcopy(op)
    assert torch.equal(clone(x), y) and torch.equal(clone.normal(x), normal)
    torch.save(op, io.BytesIO())
    assert torch.equal(op(x), y)  # the original keeps its cached plans


@pytest.mark.skipif(not has_cufinufft(), reason="needs a GPU with cupy and cufinufft")
def test_cuda_backends_agree_with_cpu(rng):
    coord, x, _ = _problem((8, 6, 4), rng)
    expected = NUFFT(coord, (8, 6, 4), backend="sigpy")(x)
    for backend in ("cufinufft", "sigpy"):
        op = NUFFT(coord, (8, 6, 4), backend=backend).cuda()
        assert relative_error(op(x.cuda()).cpu(), expected) < 2e-2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"coord": torch.zeros(5, 3)}, "last dimension must equal"),
        ({"coord": torch.full((5, 2), 4.5)}, r"coord\[..., 0\] must lie in"),
        ({"coord": torch.zeros(5, 2), "backend": "nfft"}, "backend must be one of"),
        ({"coord": torch.zeros(5, 2), "eps": 2.0}, "eps must be in"),
        ({"coord": torch.zeros(5, 2), "image_shape": (8,)}, "2 or 3 entries"),
    ],
)
def test_bad_construction(kwargs, match):
    kwargs = {"image_shape": (8, 8), **kwargs}
    with pytest.raises(ValueError, match=match):
        NUFFT(**kwargs)


def test_bad_calls(rng):
    coord, x, y = _problem((8, 8), rng)
    op = NUFFT(coord, (8, 8))
    with pytest.raises(ValueError, match="image must be complex"):
        op(x.real)
    with pytest.raises(ValueError, match="image must have shape"):
        op(x[..., :7])
    y_nan = y.clone()
    y_nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="kspace contains 1 non-finite"):
        op.adjoint(y_nan)
    with pytest.raises(ValueError, match="kspace must have shape"):
        op.adjoint(y[..., :5])
    with pytest.raises(ValueError, match="image is on meta but the NUFFT coordinates are on cpu"):
        op(x.to("meta"))
