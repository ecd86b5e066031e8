"""The operator contract: NUFFT and Sense satisfy LinearOperator; normal_rhs matches normal."""

import pytest
import torch
from operator_checks import (
    assert_adjoint,
    assert_vjp_is_adjoint,
    random_complex,
    random_coord,
    relative_error,
)

from blockrecon.physics import NORMALS, NUFFT, LinearOperator, Sense
from blockrecon.physics.cg import conjugate_gradient

SHAPE = (6, 5)
SAMPLES = (4, 15)
COILS = 3


def _weights(rng):
    return torch.rand(SAMPLES, generator=rng, dtype=torch.float64) + 0.1


def _operators(rng, normal):
    """``(name, operator, k-space shape)`` for each implementation, complex128, exact DFT."""
    coord = random_coord(SAMPLES, SHAPE, rng).double()
    maps = random_complex((COILS, *SHAPE), rng, torch.complex128)
    return [
        ("nufft", NUFFT(coord, SHAPE, backend="dft", normal=normal), SAMPLES),
        ("sense", Sense(maps, coord, backend="dft", normal=normal), (COILS, *SAMPLES)),
        (
            "weighted sense",
            Sense(maps, coord, weights=_weights(rng), backend="dft", normal=normal),
            (COILS, *SAMPLES),
        ),
    ]


@pytest.mark.parametrize("normal", NORMALS)
def test_every_operator_satisfies_the_contract(normal, rng):
    for name, op, kspace_shape in _operators(rng, normal):
        assert isinstance(op, LinearOperator), name
        assert op.image_shape == SHAPE, name
        x = random_complex((2, *SHAPE), rng, torch.complex128)
        y = random_complex((2, *kspace_shape), rng, torch.complex128)
        assert_adjoint(op.forward, op.adjoint, x, y, tol=1e-10)
        assert_vjp_is_adjoint(op.forward, op.adjoint, x, y, tol=1e-10)
        assert_adjoint(op.normal, op.normal, x, x.flip(0), tol=1e-10)  # self-adjoint
        assert_vjp_is_adjoint(op.normal, op.normal, x, x.flip(0), tol=1e-10)
        # normal is E^H W E and normal_rhs is E^H W: normal = normal_rhs after forward
        assert relative_error(op.normal(x), op.normal_rhs(op.forward(x))) < 1e-8, name


def test_normal_rhs_is_the_adjoint_of_the_weighted_kspace(rng):
    coord = random_coord(SAMPLES, SHAPE, rng)
    maps = random_complex((COILS, *SHAPE), rng)
    weights = _weights(rng).float()
    y = random_complex((COILS, *SAMPLES), rng)
    weighted, plain = Sense(maps, coord, weights=weights), Sense(maps, coord)
    assert torch.equal(weighted.normal_rhs(y), weighted.adjoint(y * weights))
    assert torch.equal(plain.normal_rhs(y), plain.adjoint(y))
    assert torch.equal(weighted.adjoint(y), plain.adjoint(y))  # the adjoint stays unweighted


@pytest.mark.parametrize("normal", NORMALS)
def test_cg_on_the_normal_equations_solves_weighted_least_squares(normal, rng):
    """CG on ``(normal, normal_rhs)`` equals ``argmin ||W^(1/2) (E x - y)||`` by lstsq."""
    coord = random_coord(SAMPLES, SHAPE, rng).double()
    maps = random_complex((COILS, *SHAPE), rng, torch.complex128)
    weights = _weights(rng)
    op = Sense(maps, coord, weights=weights, backend="dft", normal=normal)
    y = random_complex((COILS, *SAMPLES), rng, torch.complex128)
    basis = torch.eye(op.image_shape[0] * op.image_shape[1], dtype=torch.complex128)
    matrix = op.forward(basis.reshape(-1, *SHAPE)).reshape(basis.shape[0], -1).T
    root_w = weights.sqrt().expand(y.shape).reshape(-1, 1)
    expected = torch.linalg.lstsq(root_w * matrix, root_w[:, 0] * y.reshape(-1)).solution
    solution = conjugate_gradient(op.normal, op.normal_rhs(y), 200, tol=1e-12, progress=False)
    assert relative_error(solution.reshape(-1), expected) < 1e-6
    unweighted = conjugate_gradient(op.normal, op.adjoint(y), 200, tol=1e-12, progress=False)
    assert relative_error(unweighted.reshape(-1), expected) > 1e-2  # the weights matter


def test_normal_is_checked_at_construction(rng):
    coord = random_coord(SAMPLES, SHAPE, rng)
    with pytest.raises(ValueError, match="normal must be one of"):
        NUFFT(coord, SHAPE, normal="exact")
    with pytest.raises(ValueError, match="normal must be one of"):
        Sense(random_complex((COILS, *SHAPE), rng), coord, normal=True)
