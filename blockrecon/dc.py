"""Data-consistency layers for unrolled reconstruction.

Both layers act on a complex image ``z`` (the regularizer's output), given ``aty = E^H y`` and a
:class:`~blockrecon.physics.LinearOperator` ``op`` whose ``normal(x) = E^H E x`` (e.g.
:class:`blockrecon.physics.Sense`; Toeplitz or NUFFT pair as the operator was built).
Images are complex ``(*batch, *image_shape)``. With a weighted operator (``Sense(weights=W)``)
``E^H E`` reads ``E^H W E`` and ``E^H y`` reads ``E^H W y`` (``op.normal_rhs(y)``).

:class:`GradientStepDC`
    ``x = z - a (E^H E z - E^H y)`` with a learnable step ``a``.
:class:`ConjugateGradientDC`
    MoDL: ``x = argmin ||E x - y||^2 + lam ||x - z||^2``, i.e. ``(E^H E + lam I) x = E^H y +
    lam z``, solved by conjugate gradient with a learnable ``lam > 0``. Backward differentiates
    implicitly: one more CG solve with the same operator, so no CG iterate is stored (only
    ``z`` and the solution ``x``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.physics import LinearOperator
from blockrecon.physics.cg import conjugate_gradient
from blockrecon.physics.preconditioner import check_preconditioner, circulant_preconditioner

#: How :class:`ConjugateGradientDC` differentiates its solve.
BACKWARDS = ("implicit", "unrolled")

Normal = Callable[[torch.Tensor], torch.Tensor]
Preconditioner = Callable[[torch.Tensor], torch.Tensor] | None


def _check_pair(z: torch.Tensor, aty: torch.Tensor) -> None:
    if not (z.is_complex() and aty.is_complex()):
        raise ValueError(f"data consistency expects complex images, got {z.dtype} and {aty.dtype}")
    if z.shape != aty.shape:
        raise ValueError(f"image {tuple(z.shape)} and E^H y {tuple(aty.shape)} differ in shape")


class _GradientStep(torch.autograd.Function):
    """``x = z - a (N z - aty)`` for a self-adjoint ``N``, saving only the residual.

    Backward: ``dz = g - a N g``, ``d aty = a g``, ``da = -Re <r, g>``, computed in place
    (one application of ``N`` and no other image-sized temporary).
    """

    @staticmethod
    def forward(ctx, z, aty, step, normal: Normal):
        with torch.no_grad():
            residual = normal(z).sub_(aty)
            x = residual.mul(-step).add_(z)
        ctx.normal = normal
        ctx.save_for_backward(residual, step)
        return x

    @staticmethod
    def backward(ctx, grad):
        residual, step = ctx.saved_tensors
        grad_z = grad_aty = grad_step = None
        with torch.no_grad():
            if ctx.needs_input_grad[0]:
                grad_z = ctx.normal(grad).mul_(-step).add_(grad)
            if ctx.needs_input_grad[1]:
                grad_aty = grad * step
            if ctx.needs_input_grad[2]:
                grad_step = -torch.vdot(grad.flatten(), residual.flatten()).real.to(step.dtype)
        return grad_z, grad_aty, grad_step, None


def _operator_learns(op: LinearOperator) -> bool:
    """Whether any tensor of ``op`` (e.g. coil maps being estimated) requires a gradient."""
    return isinstance(op, nn.Module) and any(
        t.requires_grad for t in itertools.chain(op.parameters(), op.buffers())
    )


class GradientStepDC(nn.Module):
    """Learned gradient step ``x = z - a * (E^H E z - E^H y)``.

    Args:
        step: initial step size ``a`` (learnable when ``learnable``).
        learnable: make ``a`` a parameter.

    Autograd keeps one image per call (the residual ``E^H E z - E^H y``) and backward makes no
    image-sized temporary beyond one normal-operator application. When the operator itself
    requires gradients (learned coil maps), plain autograd through the formula is used.
    """

    def __init__(self, step: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        step_tensor = torch.tensor(check_positive(step, "step"))
        self.step = nn.Parameter(step_tensor) if learnable else step_tensor

    def forward(self, z: torch.Tensor, aty: torch.Tensor, op: LinearOperator) -> torch.Tensor:
        """``z``, ``aty``: complex ``(*batch, *image_shape)`` -> ``x`` of the same shape."""
        _check_pair(z, aty)
        if _operator_learns(op):
            return z - self.step * (op.normal(z) - aty)
        return _GradientStep.apply(z, aty, self.step.to(z.real.dtype), op.normal)


def _regularized(normal: Normal, lam: torch.Tensor) -> Normal:
    """``v -> N v + lam v``, the system matrix of the CG data consistency."""
    return lambda v: normal(v) + lam * v


class _ConjugateGradientSolve(torch.autograd.Function):
    """``x = (N + lam I)^{-1} (aty + lam z)`` with an implicit (CG) backward; both solves use
    the same preconditioner (``None``: plain CG)."""

    @staticmethod
    def forward(
        ctx, z, aty, lam, normal: Normal, n_iter: int, tol: float, preconditioner: Preconditioner
    ):
        system = _regularized(normal, lam)
        with torch.no_grad():
            x = conjugate_gradient(
                system,
                aty + lam * z,
                n_iter,
                tol,
                x0=z,
                progress=False,
                preconditioner=preconditioner,
            )
        ctx.system, ctx.n_iter, ctx.tol = system, n_iter, tol
        ctx.preconditioner = preconditioner
        ctx.save_for_backward(z, x, lam)
        return x

    @staticmethod
    def backward(ctx, grad):
        z, x, lam = ctx.saved_tensors
        with torch.no_grad():
            v = conjugate_gradient(
                ctx.system,
                grad,
                ctx.n_iter,
                ctx.tol,
                progress=False,
                preconditioner=ctx.preconditioner,
            )
            grad_lam = torch.vdot(v.flatten(), (z - x).flatten()).real.to(lam.dtype)
        return lam * v, v, grad_lam, None, None, None, None


class ConjugateGradientDC(nn.Module):
    """MoDL data consistency: solve ``(E^H E + lam I) x = E^H y + lam z`` by CG.

    Args:
        lam: initial regularization weight (learnable, kept positive as ``exp(log_lam)``).
        n_iter: CG iterations in forward and in the implicit backward.
        tol: relative residual at which CG stops early (0 runs all iterations).
        learnable: make ``lam`` a parameter.
        preconditioner: ``None`` or ``"none"`` (plain CG) or ``"circulant"``
            (:func:`~blockrecon.physics.preconditioner.circulant_preconditioner` of the
            operator, which must then be a :class:`~blockrecon.physics.Sense`; built once per
            operator and ``lam``).
        backward: ``"implicit"`` (default) or ``"unrolled"`` (:data:`BACKWARDS`).

    CG starts from ``z``. ``backward="implicit"``: gradients with respect to ``z``, ``E^H y``
    and ``lam`` come from a second CG solve (the system is Hermitian), exact to the CG
    tolerance, i.e. the derivative of the exact solution; no iterate is stored. Right when CG
    (nearly) converges; with one or two iterations the forward is far from the solution and
    that gradient is not the derivative of what was computed (training then diverged).
    ``backward="unrolled"``: autograd through the ``n_iter`` iterations, the exact derivative
    of the forward, storing a few images per iteration; for a few (preconditioned)
    iterations per unroll, e.g. ``n_iter=1``: a preconditioned steepest-descent step with
    exact line search, two normal operations, stable at any image size. A preconditioner
    changes neither the solution nor these gradients, only how many iterations reach a given
    accuracy, so it changes the output of a fixed, small ``n_iter``: a network trained without
    one is not guaranteed to keep its quality with one.
    """

    def __init__(
        self,
        lam: float = 0.05,
        n_iter: int = 10,
        tol: float = 0.0,
        learnable: bool = True,
        preconditioner: str | None = None,
        backward: str = "implicit",
    ) -> None:
        super().__init__()
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
        self.backward = backward
        log_lam = torch.tensor(math.log(check_positive(lam, "lam")))
        self.log_lam = nn.Parameter(log_lam) if learnable else log_lam
        check_positive_int(n_iter, "n_iter")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f"tol must be >= 0, got {tol!r}")
        self.n_iter, self.tol = n_iter, float(tol)
        self.preconditioner = check_preconditioner(preconditioner)

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lam.exp()

    def forward(self, z: torch.Tensor, aty: torch.Tensor, op: LinearOperator) -> torch.Tensor:
        """``z``, ``aty``: complex ``(*batch, *image_shape)`` -> ``x`` of the same shape."""
        _check_pair(z, aty)
        lam = self.lam.to(z.real.dtype)
        preconditioner = None
        if self.preconditioner is not None:
            preconditioner = circulant_preconditioner(op).shifted(lam.item(), z.real.dtype)
        if self.backward == "unrolled":
            return conjugate_gradient(
                _regularized(op.normal, lam),
                aty + lam * z,
                self.n_iter,
                self.tol,
                x0=z,
                progress=False,
                preconditioner=preconditioner,
            )
        return _ConjugateGradientSolve.apply(
            z, aty, lam, op.normal, self.n_iter, self.tol, preconditioner
        )
