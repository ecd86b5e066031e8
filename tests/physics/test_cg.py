"""Conjugate gradient on a Hermitian positive definite system."""

import torch

from blockrecon.physics.cg import conjugate_gradient


def test_conjugate_gradient_solves_hermitian_system_and_stops_at_tolerance():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=generator, dtype=torch.complex128)
    matrix = a.conj().T @ a + 0.5 * torch.eye(20, dtype=torch.complex128)
    rhs = torch.randn(20, generator=generator, dtype=torch.complex128)
    solution = conjugate_gradient(lambda x: matrix @ x, rhs, n_iter=60, progress=False)
    assert torch.allclose(solution, torch.linalg.solve(matrix, rhs), atol=1e-8)
    calls = []

    def counted(x):
        calls.append(1)
        return matrix @ x

    loose = conjugate_gradient(counted, rhs, n_iter=60, tol=1e-2, progress=False)
    assert (matrix @ loose - rhs).norm() <= 1e-2 * rhs.norm()
    assert len(calls) < 20


def test_callback_sees_every_iterate_and_its_true_relative_residual():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(15, 15, generator=generator, dtype=torch.complex128)
    matrix = a.conj().T @ a + 0.5 * torch.eye(15, dtype=torch.complex128)
    rhs = torch.randn(15, generator=generator, dtype=torch.complex128)
    seen = []
    solution = conjugate_gradient(
        lambda x: matrix @ x,
        rhs,
        n_iter=8,
        progress=False,
        callback=lambda i, x, residual: seen.append((i, x.clone(), residual)),
    )
    assert [i for i, _, _ in seen] == list(range(1, 9))
    assert torch.equal(seen[-1][1], solution)
    for _, x, residual in seen:
        true = ((rhs - matrix @ x).norm() / rhs.norm()).item()
        assert abs(residual - true) < 1e-8
