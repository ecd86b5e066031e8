"""Unrolled networks: full-volume data consistency alternating with a (block-wise) regularizer.

One unroll is ``x <- dc(R(x), E^H W y, E)``: the regularizer ``R`` is a tiling-capable network
(complex image seen as 2 channels) applied block-wise with checkpointed patches
(:class:`~blockrecon.blockwise.BlockwiseRegularizer`) or, with ``patch_size=None``, to the whole
once-padded volume (:func:`~blockrecon.blockwise.apply_full`, the exact reference). The data
consistency ``dc`` (:mod:`blockrecon.dc`) always sees the full volume. ``E^H W y`` is the
operator's ``normal_rhs(y)`` (:class:`~blockrecon.physics.LinearOperator`), with the same sample
weights ``W`` as its normal operator ``E^H W E`` (identity when it has none), so data
consistency solves one weighted least-squares problem: density
weights (:func:`~blockrecon.physics.pipe_menon_dcf`) make that system well conditioned, and a
few CG iterations then converge at any image size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from blockrecon.blockwise import BlockwiseRegularizer, apply_full, tiling_contract
from blockrecon.checks import check_positive_int
from blockrecon.physics import LinearOperator

INITS = ("zeros", "adjoint")


def adjoint_scale(aty: torch.Tensor, op: nn.Module) -> torch.Tensor:
    """``<aty, aty> / <aty, E^H W E aty>``: the factor ``s`` that minimises ``||E s aty - y||``
    (weighted by ``W``) for ``aty = E^H W y``. ``aty``: complex ``(*batch, *image_shape)``;
    returns a real 0-d tensor (no autograd graph)."""
    with torch.no_grad():
        curvature = torch.vdot(aty.flatten(), op.normal(aty).flatten()).real
        return aty.norm() ** 2 / curvature.clamp_min(torch.finfo(curvature.dtype).tiny)


class _FullVolume(nn.Module):
    """A tiling-capable net applied to the whole once-padded volume."""

    def __init__(self, net: nn.Module, padding: str) -> None:
        super().__init__()
        tiling_contract(net)
        self.net, self.padding = net, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_full(self.net, x, self.padding)


class UnrolledNet(nn.Module):
    """``n_unrolls`` alternations of regularizer and data consistency.

    Args:
        regularizer: tiling-capable network on 2 real channels (e.g.
            :class:`blockrecon.nn.ResNet3d`).
        dc: data-consistency layer, called as ``dc(z, aty, op)``
            (:class:`~blockrecon.dc.GradientStepDC`, :class:`~blockrecon.dc.ConjugateGradientDC`).
        n_unrolls: number of unrolls.
        share_weights: one regularizer and one dc for all unrolls; else independent copies.
        patch_size: block-wise core size (int or per dimension); ``None`` applies the
            regularizer to the full volume.
        halo: block-wise halo (``"auto"`` from the network's declared contract).
        padding: how the volume is padded once for the regularizer (``"reflect"``, ``"zeros"``).
        patch_batch: patches per checkpointed network call.
        checkpoint_unrolls: also checkpoint each unroll, so only its input state is kept.
        init: ``"zeros"`` or ``"adjoint"`` (``E^H y`` scaled to minimise ``||E s E^H y - y||``).

    ``forward(y, op)``: k-space ``(*batch, coils, *samples)`` and a
    :class:`~blockrecon.physics.LinearOperator` (:class:`blockrecon.physics.Sense`; ``E^H W y``
    is its ``normal_rhs(y)``); returns the complex image ``(*batch, *image_shape)``.
    """

    def __init__(
        self,
        regularizer: nn.Module,
        dc: nn.Module,
        n_unrolls: int,
        share_weights: bool = True,
        patch_size: int | Sequence[int] | None = None,
        halo: int | Sequence[int] | str = "auto",
        padding: str = "reflect",
        patch_batch: int = 1,
        checkpoint_unrolls: bool = False,
        init: str = "zeros",
    ) -> None:
        super().__init__()
        check_positive_int(n_unrolls, "n_unrolls")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        n_distinct = 1 if share_weights else n_unrolls

        def regularize(net: nn.Module) -> nn.Module:
            if patch_size is None:
                return _FullVolume(net, padding)
            return BlockwiseRegularizer(
                net, patch_size, halo=halo, patch_batch=patch_batch, padding=padding
            )

        nets = [regularizer] + [copy.deepcopy(regularizer) for _ in range(n_distinct - 1)]
        dcs = [dc] + [copy.deepcopy(dc) for _ in range(n_distinct - 1)]
        self.regularizers = nn.ModuleList(regularize(n) for n in nets)
        self.dcs = nn.ModuleList(dcs)
        self.n_unrolls, self.share_weights = n_unrolls, share_weights
        self.checkpoint_unrolls, self.init = checkpoint_unrolls, init

    def initial_image(
        self, aty: torch.Tensor, op: nn.Module, aty_scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Zeros, or ``E^H W y`` scaled by :func:`adjoint_scale` (``aty_scale`` when given)."""
        if self.init == "zeros":
            return torch.zeros_like(aty)
        return (adjoint_scale(aty, op) if aty_scale is None else aty_scale) * aty

    def _unroll(self, k: int, x: torch.Tensor, aty: torch.Tensor, op: nn.Module) -> torch.Tensor:
        i = 0 if self.share_weights else k
        batched = x if x.ndim == len(op.image_shape) + 1 else x.unsqueeze(0)
        z = self.regularizers[i](batched).reshape(x.shape)
        return self.dcs[i](z, aty, op)

    def forward(self, y: torch.Tensor, op: LinearOperator) -> torch.Tensor:
        return self.solve(op.normal_rhs(y), op)

    def solve(
        self, aty: torch.Tensor, op: nn.Module, aty_scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The network on a precomputed right-hand side ``aty = E^H W y``, complex
        ``(*batch, *image_shape)`` (one batch dimension at most), and optionally its
        :func:`adjoint_scale` (``init="adjoint"``); returns the complex image of ``aty``'s
        shape. ``forward(y, op)`` is ``solve(op.normal_rhs(y), op)``."""
        if aty.ndim not in (len(op.image_shape), len(op.image_shape) + 1):
            raise ValueError(
                f"UnrolledNet takes one batch dimension at most; E^H y has shape {tuple(aty.shape)}"
            )
        x = self.initial_image(aty, op, aty_scale)
        for k in range(self.n_unrolls):
            if self.checkpoint_unrolls and torch.is_grad_enabled():
                x = checkpoint(self._unroll, k, x, aty, op, use_reentrant=False)
            else:
                x = self._unroll(k, x, aty, op)
        return x
