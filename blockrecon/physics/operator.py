"""The operator contract shared by data consistency, CG, L1-wavelet CS and unrolled networks.

A :class:`LinearOperator` ``E`` maps images ``(*batch, *image_shape)`` to k-space and carries
its own sample weights ``W`` (identity when it has none): ``normal`` is ``E^H W E`` and
``normal_rhs`` is the matching right-hand side ``E^H W y``, so that ``normal(x) = normal_rhs(y)``
are the normal equations of the weighted least squares ``min_x ||W^(1/2) (E x - y)||^2``.
``adjoint`` stays the true adjoint of ``forward`` (unweighted). Whether ``normal`` runs as a
Toeplitz embedding or as a NUFFT pair is chosen when the operator is built (:data:`NORMALS`).
"""

from __future__ import annotations

import itertools
from typing import Protocol, runtime_checkable

import torch

__all__ = ["LinearOperator", "NORMALS", "check_normal", "max_eigenvalue"]

#: How an operator computes ``normal``: ``"toeplitz"`` (one FFT convolution on the 2x grid,
#: the cheap default) or ``"pair"`` (``adjoint(W forward(x))`` through the NUFFT).
NORMALS = ("toeplitz", "pair")


@runtime_checkable
class LinearOperator(Protocol):
    """``E`` with its weighted normal equations (see the module docstring).

    Images are complex64/128 ``(*batch, *image_shape)``; k-space complex of the same dtype,
    shaped as the operator defines (``(*batch, coils, *samples)`` for SENSE).
    """

    image_shape: tuple[int, ...]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``E x``: image -> k-space."""

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``E^H y``: k-space -> image, the exact adjoint of :meth:`forward`."""

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``E^H W E x``: image -> image, self-adjoint positive semi-definite."""

    def normal_rhs(self, kspace: torch.Tensor) -> torch.Tensor:
        """``E^H W y``: k-space -> image, the right-hand side that matches :meth:`normal`."""


def check_normal(normal: str) -> str:
    """Return ``normal`` if it is one of :data:`NORMALS`, else raise ``ValueError``."""
    if normal not in NORMALS:
        raise ValueError(f"normal must be one of {NORMALS}, got {normal!r}")
    return normal


def _device(op: LinearOperator) -> torch.device:
    """Device of the operator's tensors (a module's parameters and buffers), CPU if none."""
    if isinstance(op, torch.nn.Module):
        for tensor in itertools.chain(op.parameters(), op.buffers()):
            return tensor.device
    return torch.device("cpu")


def max_eigenvalue(op: LinearOperator, n_iter: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of ``op.normal`` (``E^H W E``) by power iteration.

    Starts from a complex64 Gaussian image ``image_shape`` drawn with ``seed`` on the CPU,
    moved to the operator's device; no gradients.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(op.image_shape, generator=generator, dtype=torch.complex64)
    x = x.to(_device(op))
    eigenvalue = 0.0
    with torch.no_grad():
        for _ in range(n_iter):
            y = op.normal(x / x.norm())
            eigenvalue = float(y.norm())
            x = y
    return eigenvalue
