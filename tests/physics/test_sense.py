"""Sense: adjointness, coil batching, weights, Toeplitz normal, gradients, bad input."""

import pytest
import torch
from operator_checks import (
    CPU_NUFFT_BACKENDS,
    assert_adjoint,
    assert_vjp_is_adjoint,
    random_complex,
    random_coord,
    relative_error,
)

from blockrecon.backend import has_finufft
from blockrecon.memory import saved_bytes
from blockrecon.physics import NORMALS
from blockrecon.physics import sense as sense_module
from blockrecon.physics.sense import Sense

SHAPES = [(10, 8), (6, 5, 4)]
COILS = 3


def _problem(image_shape, rng, batch=(2,), samples=(4, 30), dtype=torch.complex64):
    maps = random_complex((COILS, *image_shape), rng, dtype)
    coord = random_coord(samples, image_shape, rng)
    x = random_complex((*batch, *image_shape), rng, dtype)
    y = random_complex((*batch, COILS, *samples), rng, dtype)
    return maps, coord, x, y


@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
@pytest.mark.parametrize("image_shape", SHAPES)
def test_adjoint_and_vjp(backend, image_shape, rng):
    maps, coord, x, y = _problem(image_shape, rng)
    op = Sense(maps, coord, backend=backend)
    assert_adjoint(op.forward, op.adjoint, x, y, tol=1e-4)
    assert_vjp_is_adjoint(op.forward, op.adjoint, x, y)
    assert_vjp_is_adjoint(op.adjoint, op.forward, y, x)


@pytest.mark.parametrize("image_shape", SHAPES)
def test_coil_batch_gives_same_result(image_shape, rng):
    maps, coord, x, y = _problem(image_shape, rng)
    whole, chunked = Sense(maps, coord), Sense(maps, coord, coil_batch=2)
    assert torch.allclose(chunked(x), whole(x), atol=1e-5)
    assert torch.allclose(chunked.adjoint(y), whole.adjoint(y), atol=1e-5)
    assert torch.allclose(chunked.normal(x), whole.normal(x), atol=1e-5)


@pytest.mark.skipif(not has_finufft(), reason="finufft not installed")
@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_toeplitz_normal_matches_nufft_pair(image_shape, weighted, rng):
    maps, coord, x, _ = _problem(image_shape, rng)
    weights = torch.rand(coord.shape[:-1], generator=rng) if weighted else None
    op = Sense(maps, coord, weights=weights, backend="finufft")
    pair = Sense(maps, coord, weights=weights, backend="finufft", normal="pair").normal(x)
    assert relative_error(op.normal(x), pair) < 1e-3
    if weighted:  # weights really enter: unweighted normal differs
        assert relative_error(Sense(maps, coord, backend="finufft").normal(x), pair) > 0.1


@pytest.mark.parametrize("normal", NORMALS)
def test_normal_keeps_image_dtype_with_double_weights(normal, rng):
    maps, coord, x, _ = _problem((6, 6), rng)
    weights = torch.rand(coord.shape[:-1], generator=rng, dtype=torch.float64)
    out = Sense(maps, coord, weights=weights, normal=normal).normal(x)
    assert out.dtype == torch.complex64 and out.shape == x.shape


@pytest.mark.parametrize("image_shape", SHAPES)
def test_toeplitz_normal_sigpy_within_its_accuracy(image_shape, rng):
    """SigPy's own NUFFT pair is only ~1e-2 accurate at these sizes; Toeplitz stays within it."""
    maps, coord, x, _ = _problem(image_shape, rng)
    weights = torch.rand(coord.shape[:-1], generator=rng)
    op = Sense(maps, coord, weights=weights, backend="sigpy")
    pair = Sense(maps, coord, weights=weights, backend="sigpy", normal="pair")
    assert relative_error(op.normal(x), pair.normal(x)) < 3e-2


@pytest.mark.parametrize("normal", NORMALS)
@pytest.mark.parametrize("backend", CPU_NUFFT_BACKENDS)
def test_normal_autograd_and_gradcheck(backend, normal, rng):
    maps, coord, x, _ = _problem((4, 5), rng, batch=(), samples=(7,), dtype=torch.complex128)
    weights = torch.rand(7, generator=rng, dtype=torch.float64)
    op = Sense(maps, coord.double(), weights=weights, backend=backend, normal=normal)
    assert_vjp_is_adjoint(op.normal, op.normal, x, x.flip(0))  # self-adjoint
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(op.forward, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(op.normal, (x,), eps=1e-6, atol=1e-5)


def _saved_numels(fn):
    """Sizes of the tensors autograd saves while ``fn()`` runs."""
    numels = [0]
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: numels.append(t.numel()) or t, lambda t: t
    ):
        fn()
    return numels


@pytest.mark.parametrize("normal", NORMALS)
def test_normal_saves_nothing_and_its_peak_ignores_the_coil_count(normal, rng):
    """Autograd saves nothing but the input check's scalar; one coil at a time, forward +
    backward of the normal holds a few image-sized tensors (no 2N grid, nothing per coil), the
    same for 2 and 6 coils."""
    shape = (12, 10, 8)
    coord = random_coord((200,), shape, rng)
    x = random_complex(shape, rng).requires_grad_(True)
    image_bytes = x.numel() * x.element_size()
    peaks = []
    for coils in (2, 6):
        op = Sense(random_complex((coils, *shape), rng), coord, coil_batch=1, normal=normal)
        if op.toeplitz is not None:
            op.toeplitz.kernel()  # built once, before any step
        assert max(_saved_numels(lambda op=op: op.normal(x))) <= 1
        peaks.append(saved_bytes(lambda op=op: op.normal(x).abs().sum().backward()))
    assert max(peaks) < 9 * image_bytes  # a 2N grid alone is 8 image sizes in 3D
    assert abs(peaks[1] - peaks[0]) <= image_bytes


@pytest.mark.parametrize("normal", NORMALS)
def test_gradient_flows_to_maps_through_normal(normal, rng):
    maps, coord, x, _ = _problem((4, 3), rng, batch=(), samples=(9,), dtype=torch.complex128)

    def normal_of_maps(m):
        return Sense(m, coord.double(), coil_batch=2, normal=normal).normal(x)

    maps.requires_grad_(True)
    assert torch.autograd.gradcheck(normal_of_maps, (maps,), eps=1e-6, atol=1e-5)


def test_automatic_coil_batch_gives_same_result(monkeypatch, rng):
    maps, coord, x, y = _problem((6, 5, 4), rng)
    monkeypatch.setattr(sense_module, "AUTO_COIL_VALUES", 2 * 6 * 5 * 4)  # two coils a chunk
    for normal in NORMALS:
        whole = Sense(maps, coord, coil_batch=COILS, normal=normal)
        auto = Sense(maps, coord, normal=normal)
        assert [c.stop - c.start for c in auto._coil_chunks()] == [2, 1]
        assert torch.allclose(auto.normal(x), whole.normal(x), atol=1e-5)
    assert torch.allclose(auto.adjoint(y), whole.adjoint(y), atol=1e-5)


def test_gradient_flows_to_maps(rng):
    maps, coord, x, y = _problem((6, 6), rng, batch=())
    maps = torch.nn.Parameter(maps)
    op = Sense(maps, coord)
    assert list(op.parameters()) == [maps]
    loss = (op(x) - y).abs().pow(2).sum()
    loss.backward()
    # d loss / d conj(S_c) direction: gradient of |F(S_c x) - y_c|^2 is 2 conj(x) F^H(F S_c x - y_c)
    with torch.no_grad():
        expected = 2 * x.conj() * op.nufft.adjoint(op(x) - y)
    assert relative_error(maps.grad, expected) < 1e-5


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m, c, y: Sense(m[0], c), "maps must be a tensor of shape"),
        (lambda m, c, y: Sense(m.real, c), "maps must be complex"),
        (lambda m, c, y: Sense(m, c[..., :1]), "last dimension must equal"),
        (lambda m, c, y: Sense(m, c * 3), "must lie in"),
        (lambda m, c, y: Sense(m, c, weights=-torch.ones(30)), "non-negative"),
        (lambda m, c, y: Sense(m, c, coil_batch=0), "coil_batch"),
        (lambda m, c, y: Sense(m, c).adjoint(y[:, :2]), "coil count mismatch"),
        (lambda m, c, y: Sense(m, c).adjoint(y * float("inf")), "kspace contains"),
        (lambda m, c, y: Sense(m, c)(torch.ones(10, 8)), "image must be complex"),
        (lambda m, c, y: Sense(m, c)(torch.ones(10, 9, dtype=torch.complex64)), "image must have"),
    ],
)
def test_bad_input(make, match, rng):
    maps, coord, _, y = _problem((10, 8), rng)
    with pytest.raises(ValueError, match=match):
        make(maps, coord, y)
