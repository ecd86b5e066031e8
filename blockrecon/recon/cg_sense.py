"""CG-SENSE: iterative SENSE reconstruction by conjugate gradient on the normal equations."""

from __future__ import annotations

import torch

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.physics.cg import conjugate_gradient
from blockrecon.physics.preconditioner import check_preconditioner, circulant_preconditioner
from blockrecon.physics.validation import check_weights
from blockrecon.recon._common import sense_operator


def cg_sense(
    kspace: torch.Tensor,
    coord: torch.Tensor,
    maps: torch.Tensor,
    weights: torch.Tensor | None = None,
    n_iter: int = 30,
    lamda: float = 0.0,
    tol: float = 1e-6,
    backend: str = "auto",
    progress: bool = True,
    preconditioner: str | None = None,
) -> torch.Tensor:
    """CG-SENSE: ``argmin_x ||W^(1/2) (E x - y)||^2 + lamda ||x||^2``.

    Solves ``(E^H W E + lamda I) x = E^H W y`` by :func:`conjugate_gradient` starting from zero,
    with the Toeplitz normal operator of :class:`~blockrecon.physics.sense.Sense`.

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        coord: float ``(..., ndim)`` in grid units.
        maps: complex ``(coils, *image_shape)``.
        weights: optional non-negative sample weights (e.g. a DCF, which speeds convergence at
            the price of noise weighting), broadcastable to ``coord.shape[:-1]``.
        n_iter: maximum CG iterations (early stopping regularizes when ``lamda = 0``).
        lamda: Tikhonov regularization weight.
        tol: relative residual at which CG stops.
        backend: NUFFT backend.
        progress: progress bar.
        preconditioner: ``None`` or ``"none"`` (plain CG) or ``"circulant"``
            (:func:`~blockrecon.physics.preconditioner.circulant_preconditioner`): the same
            solution in fewer iterations when ``lamda > 0``. With ``lamda = 0`` the early
            stopping of plain CG is what regularizes, and a preconditioner reaches the noisy
            least-squares solution sooner: measured in ``benchmarks/bench_preconditioner.py``.

    Returns:
        complex64 image ``image_shape``.
    """
    check_positive_int(n_iter, "n_iter")
    lamda = check_positive(lamda, "lamda", allow_zero=True)
    tol = check_positive(tol, "tol", allow_zero=True)
    preconditioner = check_preconditioner(preconditioner)
    if weights is not None:
        check_weights(weights, coord.shape[:-1])
    sense = sense_operator(kspace, coord, maps, weights=weights, backend=backend)
    kspace = kspace.to(torch.complex64)
    with torch.no_grad():
        rhs = sense.normal_rhs(kspace)

        def normal(x: torch.Tensor) -> torch.Tensor:
            return sense.normal(x) + lamda * x

        inverse = None
        if preconditioner is not None:
            inverse = circulant_preconditioner(sense).shifted(lamda, rhs.real.dtype)
        return conjugate_gradient(
            normal, rhs, n_iter, tol, progress=progress, desc="CG-SENSE", preconditioner=inverse
        )
