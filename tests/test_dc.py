"""Data-consistency layers: formulas, CG solution, implicit backward equals unrolled autograd."""

from __future__ import annotations

import pytest
import torch

from blockrecon.dc import ConjugateGradientDC, GradientStepDC
from blockrecon.recon.cg_sense import conjugate_gradient


class MatrixOp(torch.nn.Module):
    """Explicit ``E`` (samples x voxels) acting on images of ``image_shape``."""

    def __init__(self, matrix: torch.Tensor, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.matrix, self.image_shape = matrix, image_shape

    def forward(self, x):
        return x.reshape(-1) @ self.matrix.T

    def adjoint(self, y):
        return (y @ self.matrix.conj()).reshape(self.image_shape)

    def normal(self, x):
        return self.adjoint(self.forward(x))


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    shape = (3, 2, 2)
    matrix = torch.randn(20, 12, dtype=torch.complex128, generator=g) / 4
    op = MatrixOp(matrix, shape)
    z = torch.randn(shape, dtype=torch.complex128, generator=g)
    y = torch.randn(20, dtype=torch.complex128, generator=g)
    return op, z, op.adjoint(y)


def test_gradient_step_formula(problem):
    op, z, aty = problem
    dc = GradientStepDC(step=0.3).double()
    expected = z - 0.3 * (op.normal(z) - aty)
    assert torch.allclose(dc(z, aty, op), expected, atol=1e-12)


def test_gradient_step_backward_equals_autograd_through_the_formula(problem):
    op, z, aty = problem
    dc = GradientStepDC(step=0.3).double()
    weights = torch.linspace(-1, 2, z.numel(), dtype=torch.float64).reshape(z.shape)

    def grads(apply):
        zz, aa = z.clone().requires_grad_(True), aty.clone().requires_grad_(True)
        dc.zero_grad()
        (apply(zz, aa).abs() * weights).sum().backward()
        return zz.grad, aa.grad, dc.step.grad.clone()

    ours = grads(lambda zz, aa: dc(zz, aa, op))
    reference = grads(lambda zz, aa: zz - dc.step * (op.normal(zz) - aa))
    for got, want in zip(ours, reference, strict=True):
        assert want.abs().max() > 0
        assert torch.allclose(got, want, atol=1e-12)


def test_gradient_step_saves_only_the_residual(problem):
    op, z, aty = problem
    z = z.requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.shape) or t, lambda t: t
    ):
        GradientStepDC(step=0.3).double()(z, aty, op)
    assert saved.count(z.shape) == 1


def test_cg_solves_regularized_normal_equations(problem):
    op, z, aty = problem
    dc = ConjugateGradientDC(lam=0.5, n_iter=30).double()
    x = dc(z, aty, op)
    lam = dc.lam.detach()
    residual = op.normal(x) + lam * x - (aty + lam * z)
    assert residual.norm() / aty.norm() < 1e-10


def test_implicit_backward_equals_autograd_through_cg_iterations(problem):
    op, z, aty = problem
    z, aty = z.requires_grad_(True), aty.requires_grad_(True)
    weights = torch.randn(
        z.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(1)
    )
    dc = ConjugateGradientDC(lam=0.2, n_iter=40).double()

    def loss(x):
        return (weights.conj() * x).real.sum() + x.abs().pow(2).sum()

    implicit = torch.autograd.grad(loss(dc(z, aty, op)), [z, aty, dc.log_lam])
    lam = dc.lam
    unrolled = conjugate_gradient(
        lambda v: op.normal(v) + lam * v, aty + lam * z, 40, x0=z, progress=False
    )
    explicit = torch.autograd.grad(loss(unrolled), [z, aty, dc.log_lam])
    for a, b in zip(implicit, explicit, strict=True):
        assert b.abs().max() > 0
        assert (a - b).norm() / b.norm() < 1e-8


def test_implicit_backward_stores_no_iterate(problem):
    op, z, aty = problem
    z = z.requires_grad_(True)
    dc = ConjugateGradientDC(n_iter=40).double()
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        dc(z, aty, op)
    volume_sized = [t for t in packed if t.shape == z.shape]
    assert len(volume_sized) <= 2  # z and the solution, whatever the iteration count


@pytest.fixture(scope="module")
def radial_problem():
    """A 6^3, 3-coil radial SENSE operator in double precision, its dense normal matrix, and
    a random ``z`` and ``E^H y``."""
    from blockrecon.physics import Sense, radial_3d

    g = torch.Generator().manual_seed(2)
    shape = (6, 6, 6)
    maps = torch.randn(3, *shape, dtype=torch.complex128, generator=g)
    op = Sense(maps / maps.abs().square().sum(0).sqrt(), radial_3d(20, 6, image_size=6))
    basis = torch.eye(216, dtype=torch.complex128).reshape(216, *shape)
    dense = torch.stack([op.normal(b).flatten() for b in basis], dim=1)
    z = torch.randn(shape, dtype=torch.complex128, generator=g)
    aty = torch.randn(shape, dtype=torch.complex128, generator=g)
    return op, dense, z, aty


def test_preconditioned_cg_gradient_equals_that_of_the_exact_solve(radial_problem):
    op, dense, z, aty = radial_problem
    weights = torch.randn(z.shape, dtype=torch.complex128, generator=torch.Generator())

    def loss(x):
        return (weights.conj() * x).real.sum() + x.abs().pow(2).sum()

    def gradients(solve, dc):
        zz, aa = z.clone().requires_grad_(True), aty.clone().requires_grad_(True)
        x = solve(zz, aa)
        return x.detach(), torch.autograd.grad(loss(x), [zz, aa, dc.log_lam])

    dc = ConjugateGradientDC(lam=0.05, n_iter=100, preconditioner="circulant").double()
    ours = gradients(lambda zz, aa: dc(zz, aa, op), dc)

    def exact(zz, aa):
        system = dense + dc.lam * torch.eye(216, dtype=torch.complex128)
        return torch.linalg.solve(system, (aa + dc.lam * zz).flatten()).reshape(z.shape)

    reference = gradients(exact, dc)
    assert (ours[0] - reference[0]).norm() / reference[0].norm() < 1e-9
    for a, b in zip(ours[1], reference[1], strict=True):
        assert b.abs().max() > 0
        assert (a - b).norm() / b.norm() < 1e-8


def test_preconditioner_reaches_the_solution_in_fewer_iterations():
    from blockrecon.physics import Sense, radial_3d, simulate_acquisition

    # 16^3, 8 coils, 50 spokes (8x below Nyquist), 40 dB: small, yet radial in its spectrum
    coord = radial_3d(50, 16, image_size=16)
    acq = simulate_acquisition(coord, (16,) * 3, n_coils=8, phantom="ellipsoids", snr_db=40)
    op = Sense(acq.maps, acq.coord)
    z, aty = torch.zeros_like(acq.image), op.normal_rhs(acq.kspace)
    exact = ConjugateGradientDC(lam=0.03, n_iter=300)(z, aty, op)

    def error(n_iter, preconditioner):
        dc = ConjugateGradientDC(lam=0.03, n_iter=n_iter, preconditioner=preconditioner)
        return ((dc(z, aty, op) - exact).norm() / exact.norm()).item()

    for n_iter in (4, 8):
        assert error(n_iter, "circulant") < 0.7 * error(n_iter, None)
    assert error(6, "circulant") < error(8, "none")
    assert error(2, "none") == error(2, None)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda op, z, aty: GradientStepDC()(z.real, aty.real, op), "complex"),
        (lambda op, z, aty: ConjugateGradientDC()(z, aty[:1], op), "shape"),
        (lambda op, z, aty: GradientStepDC(step=-1), "step"),
        (lambda op, z, aty: ConjugateGradientDC(lam=0), "lam"),
        (lambda op, z, aty: ConjugateGradientDC(n_iter=0), "n_iter"),
        (lambda op, z, aty: ConjugateGradientDC(preconditioner="ilu"), "preconditioner"),
        (lambda op, z, aty: ConjugateGradientDC(backward="autograd"), "backward"),
        (
            lambda op, z, aty: ConjugateGradientDC(preconditioner="circulant")(z, aty, op),
            "SENSE operator",
        ),
    ],
)
def test_bad_input_raises_value_error(problem, call, match):
    with pytest.raises(ValueError, match=match):
        call(*problem)


def test_preconditioned_backward_solves_with_the_same_preconditioner(radial_problem):
    """At 3 iterations (far from converged) the backward is the same preconditioned CG solve
    of the incoming gradient, not the plain one."""
    from blockrecon.physics.cg import conjugate_gradient
    from blockrecon.physics.preconditioner import circulant_preconditioner

    op, _, z, aty = radial_problem
    grad = torch.randn(z.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(5))
    dc = ConjugateGradientDC(lam=0.05, n_iter=3, preconditioner="circulant").double()
    aa = aty.clone().requires_grad_(True)
    (ours,) = torch.autograd.grad(dc(z, aa, op), [aa], grad)
    lam = dc.lam.item()
    system = lambda v: op.normal(v) + lam * v  # noqa: E731
    prec = circulant_preconditioner(op).shifted(lam, torch.float64)
    solve = dict(n_iter=3, progress=False)
    expected = conjugate_gradient(system, grad, preconditioner=prec, **solve)
    plain = conjugate_gradient(system, grad, **solve)
    assert (ours - expected).norm() / expected.norm() < 1e-10
    assert (ours - plain).norm() / plain.norm() > 1e-3


def test_unrolled_backward_is_the_derivative_of_a_few_preconditioned_iterations(radial_problem):
    """``backward="unrolled"`` differentiates what the forward computed (finite differences
    in double precision), where the implicit backward, the derivative of the exact solve,
    differs after one iteration."""
    op, _, z, aty = radial_problem
    direction = torch.randn(z.shape, dtype=torch.complex128, generator=torch.Generator())
    weights = torch.randn(z.shape, dtype=torch.complex128, generator=torch.Generator())

    def loss(dc, zz):
        return (weights.conj() * dc(zz, aty, op)).real.sum()

    def directional(backward):
        dc = ConjugateGradientDC(
            lam=0.05, n_iter=1, preconditioner="circulant", backward=backward
        ).double()
        zz = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(dc, zz), [zz])
        return torch.vdot(grad.flatten(), direction.flatten()).real.item(), dc

    unrolled, dc = directional("unrolled")
    h = 1e-6
    with torch.no_grad():
        numeric = (loss(dc, z + h * direction) - loss(dc, z - h * direction)).item() / (2 * h)
    assert unrolled == pytest.approx(numeric, rel=1e-6)
    implicit, _ = directional("implicit")
    assert abs(implicit - numeric) > 1e-2 * abs(numeric)


def test_unrolled_and_implicit_forwards_agree(radial_problem):
    op, _, z, aty = radial_problem
    outputs = [
        ConjugateGradientDC(lam=0.05, n_iter=2, preconditioner="circulant", backward=b).double()(
            z, aty, op
        )
        for b in ("implicit", "unrolled")
    ]
    assert torch.allclose(outputs[0], outputs[1], rtol=0, atol=1e-12)
