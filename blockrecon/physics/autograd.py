"""Autograd for self-adjoint linear maps: one node whose backward is the map itself."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["SelfAdjointFunction"]


class SelfAdjointFunction(torch.autograd.Function):
    """``apply(x)`` for a self-adjoint linear ``apply``, as one autograd node that saves nothing.

    The backward of a linear map is its adjoint, here the map itself, applied to the incoming
    gradient (again through this function, so higher derivatives work). ``apply`` runs without
    autograd: it may use in-place operations and frees its temporaries as it goes. Whatever it
    needs (coil maps, kernel) is held by the closure, not saved per call. ``x`` is a complex
    tensor of any shape; the result has its shape and dtype.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor]):
        ctx.operator = apply
        return apply(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return SelfAdjointFunction.apply(grad, ctx.operator), None
