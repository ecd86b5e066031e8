"""Circulant preconditioner: exact Fourier diagonal, Woodbury centre term, Hermitian positive
definite, same solution as plain CG in fewer iterations, caching, bad input."""

import math

import pytest
import torch
from operator_checks import inner, random_complex, relative_error

from blockrecon.physics import Sense, radial_3d, simulate_acquisition
from blockrecon.physics.cg import conjugate_gradient
from blockrecon.physics.preconditioner import (
    CirculantPreconditioner,
    centre_weight,
    check_preconditioner,
    circulant_preconditioner,
    fourier_diagonal,
)


@pytest.fixture(scope="module")
def radial():
    """A 16^3, 8-coil golden-means radial scan, 8x below angular Nyquist (50 spokes), with
    noise, and its SENSE operator; every spoke samples k = 0."""
    coord = radial_3d(50, 16, image_size=16)
    acq = simulate_acquisition(coord, (16,) * 3, n_coils=8, phantom="ellipsoids", snr_db=40)
    op = Sense(acq.maps, acq.coord)
    return acq, op, op.normal_rhs(acq.kspace)


def _plane_wave(frequency, shape):
    """``exp(2 pi i k n / (2N)) / sqrt(prod N)``: frequency ``k`` of the 2x grid."""
    phase = sum(
        (2 * math.pi * k / (2 * n))
        * torch.arange(n, dtype=torch.float64).view(
            *(1,) * axis, n, *(1,) * (len(shape) - axis - 1)
        )
        for axis, (k, n) in enumerate(zip(frequency, shape, strict=True))
    )
    return torch.polar(torch.ones_like(phase), phase) / math.sqrt(math.prod(shape))


@pytest.mark.parametrize("image_shape", [(6, 5, 4), (9, 8)])
def test_fourier_diagonal_is_the_rayleigh_quotient_of_plane_waves(image_shape, rng):
    maps = random_complex((3, *image_shape), rng, torch.complex128)
    coord = (torch.rand(40, len(image_shape), generator=rng) - 0.5) * torch.tensor(image_shape)
    weights = torch.rand(40, generator=rng, dtype=torch.float64)
    op = Sense(maps, coord, weights=weights)
    diagonal = fourier_diagonal(op.toeplitz.kernel(torch.float64), maps)
    assert diagonal.shape == tuple(2 * n for n in image_shape)
    for frequency in [
        (0,) * len(image_shape),
        (1, 3, 7)[: len(image_shape)],
        (5, 9, 2)[: len(image_shape)],
    ]:
        wave = _plane_wave(frequency, image_shape)
        expected = inner(wave, op.normal(wave))
        assert abs(expected.imag) < 1e-10 * abs(expected)
        assert diagonal[frequency].item() == pytest.approx(expected.real.item(), rel=1e-8)


def test_centre_term_is_added_back_exactly_by_woodbury(radial, rng):
    acq, _, _ = radial
    maps = acq.maps.to(torch.complex128)
    w0 = centre_weight(acq.coord)
    assert w0 == acq.coord.shape[0]  # one sample at k = 0 per spoke
    diagonal = torch.rand((32,) * 3, generator=rng, dtype=torch.float64)
    lam = 0.05
    preconditioner = CirculantPreconditioner(diagonal, "1x", maps=maps, centre_weight=w0)
    x = random_complex((16,) * 3, rng, torch.complex128)
    # M^{-1} x = (D + lam) x (Fourier-diagonal) + w0/prod(N) sum_c conj(S_c) <conj(S_c), x>
    spectrum = diagonal[::2, ::2, ::2] + max(lam, preconditioner.min_shift)
    circulant = torch.fft.ifftn(torch.fft.fftn(x) * spectrum)
    centre = (w0 / 16**3) * (maps.conj() * (maps * x).sum((1, 2, 3), keepdim=True)).sum(0)
    assert relative_error(preconditioner.shifted(lam, torch.float64)(circulant + centre), x) < 1e-10


@pytest.mark.parametrize("grid", ["2x", "1x"])
def test_preconditioner_is_hermitian_positive_definite(radial, grid, rng):
    _, op, _ = radial
    apply = circulant_preconditioner(op, grid=grid).shifted(0.03)
    for _ in range(3):
        x, y = random_complex((2, 16, 16, 16), rng).unbind(0)
        lhs, rhs = inner(x, apply(y)), inner(apply(x), y)
        assert abs(lhs - rhs) <= 1e-5 * abs(lhs)
        assert inner(x, apply(x)).real > 0
        assert abs(inner(x, apply(x)).imag) <= 1e-5 * inner(x, apply(x)).real
    batch = random_complex((2, 16, 16, 16), rng)
    assert torch.allclose(apply(batch)[1], apply(batch[1]), atol=1e-6)


@pytest.mark.parametrize("lam", [0.03, 0.3])
def test_preconditioned_cg_converges_to_the_plain_cg_solution(radial, lam):
    _, op, aty = radial
    double = aty.to(torch.complex128)

    def system(v):
        return op.normal(v) + lam * v

    apply = circulant_preconditioner(op).shifted(lam, torch.float64)
    plain = conjugate_gradient(system, double, 2000, 1e-11, progress=False)
    ours = conjugate_gradient(system, double, 2000, 1e-11, progress=False, preconditioner=apply)
    assert (system(ours) - double).norm() <= 1e-10 * double.norm()
    assert relative_error(ours, plain) < 1e-6


def _iterations_to(system, rhs, tol, preconditioner=None):
    calls = []

    def counted(v):
        calls.append(1)
        return system(v)

    conjugate_gradient(counted, rhs, 500, tol, progress=False, preconditioner=preconditioner)
    return len(calls)


def test_fewer_iterations_to_a_residual_on_a_radial_problem(radial):
    _, op, aty = radial
    lam = 0.03  # the shipped model's scale (its lam is 0.0345)

    def system(v):
        return op.normal(v) + lam * v

    apply = circulant_preconditioner(op).shifted(lam)
    for tol in (1e-3, 1e-4):
        plain = _iterations_to(system, aty, tol)
        ours = _iterations_to(system, aty, tol, apply)
        assert ours < 0.75 * plain, (tol, ours, plain)


def test_exact_inverse_as_preconditioner_converges_in_one_iteration(rng):
    a = random_complex((12, 12), rng, torch.complex128)
    matrix = a.conj().T @ a + 0.1 * torch.eye(12, dtype=torch.complex128)
    rhs = random_complex((12,), rng, torch.complex128)
    inverse = torch.linalg.inv(matrix)
    one = conjugate_gradient(
        lambda x: matrix @ x, rhs, 1, progress=False, preconditioner=lambda r: inverse @ r
    )
    assert relative_error(one, torch.linalg.solve(matrix, rhs)) < 1e-10


def test_built_once_per_operator_and_again_when_its_maps_change(radial):
    acq, _, _ = radial
    op = Sense(acq.maps.clone(), acq.coord)
    first = circulant_preconditioner(op)
    assert circulant_preconditioner(op) is first
    assert circulant_preconditioner(op, grid="1x") is not first
    op.maps.mul_(2.0)  # as a normalization scales the operator in place
    rebuilt = circulant_preconditioner(op)
    assert rebuilt is not first
    assert rebuilt.min_shift == pytest.approx(4 * first.min_shift, rel=1e-4)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: check_preconditioner("jacobi"), "preconditioner"),
        (lambda: circulant_preconditioner(torch.nn.Identity()), "SENSE operator"),
        (lambda: CirculantPreconditioner(torch.ones(8, 8, 8), grid="3x"), "grid"),
        (lambda: CirculantPreconditioner(torch.ones(8, 8, 8), floor=0), "floor"),
        (lambda: CirculantPreconditioner(torch.ones(8, 8, 8), centre_weight=2.0), "maps"),
        (
            lambda: CirculantPreconditioner(torch.ones(8, 8, 8)).shifted(0.1)(torch.ones(3, 3, 3)),
            "image",
        ),
    ],
)
def test_bad_input_names_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()
