"""Sparse max and average pooling with per-dimension kernel and stride (e.g. 2 in space, 4 in time).

Output sites are the coarse sites reached by at least one active input (the same kernel map,
and so the same output sites and cache, as a strided SparseConv of that kernel and stride).
Only active sites take part:

- max pooling = dense max pooling with inactive sites at -inf (max over active inputs only;
  ties go to the first offset in row-major kernel order, as in torch);
- average pooling, ``divisor="active"`` (default): sum / number of active inputs in the window;
  ``divisor="kernel"``: sum / kernel volume = dense avg pooling of the zero-filled input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from blockrecon.sparse.conv import infer_ndim
from blockrecon.sparse.kernel_map import KernelMap, as_tuple, kernel_map
from blockrecon.sparse.tensor import SparseTensor


class _SparseMaxPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, kmap: KernelMap):
        out = feats.new_full((kmap.num_out, feats.shape[1]), float("-inf"))
        winner_dtype = torch.int16 if len(kmap.entries) < 2**15 else torch.int32
        winner = torch.full(out.shape, -1, dtype=winner_dtype, device=feats.device)
        for n, (_, in_idx, out_idx) in enumerate(kmap.entries):
            candidate = feats.index_select(0, in_idx)
            current = out.index_select(0, out_idx)
            better = candidate > current
            out.index_copy_(0, out_idx, torch.where(better, candidate, current))
            marks = winner.index_select(0, out_idx).masked_fill_(better, n)
            winner.index_copy_(0, out_idx, marks)
        ctx.save_for_backward(winner)
        ctx.kmap, ctx.num_in = kmap, feats.shape[0]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (winner,) = ctx.saved_tensors
        grad_in = grad_out.new_zeros(ctx.num_in, grad_out.shape[1])
        for n, (_, in_idx, out_idx) in enumerate(ctx.kmap.entries):
            won = winner.index_select(0, out_idx) == n
            grads = grad_out.index_select(0, out_idx) * won
            grad_in.index_add_(0, in_idx, grads)
        return grad_in, None


class _SparsePool(nn.Module):
    def __init__(self, kernel_size, stride=None, ndim: int | None = None):
        super().__init__()
        ndim = infer_ndim(ndim, kernel_size, kernel_size if stride is None else stride)
        self.ndim = ndim
        self.kernel_size = as_tuple(kernel_size, ndim, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, ndim, "stride", 1)

    def kernel_map(self, x: SparseTensor) -> KernelMap:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"expected a SparseTensor, got {type(x).__name__}")
        if x.ndim != self.ndim:
            raise ValueError(f"layer expects {self.ndim}D input, got {x.ndim}D")
        return kernel_map(x, "conv", self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class SparseMaxPool(_SparsePool):
    """Max over the active sites of each window. kernel_size, stride (default = kernel_size):
    int or D ints; ndim: D when both are ints (default 3). Feats (N, C) -> (N_out, C)."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        kmap = self.kernel_map(x)
        return kmap.output(x, _SparseMaxPoolFunction.apply(x.feats, kmap))


class SparseAvgPool(_SparsePool):
    """Average over each window: ``divisor="active"`` divides the sum by the number of active
    inputs, ``divisor="kernel"`` by the kernel volume (dense avg pooling of the zero-filled
    input). Feats (N, C) -> (N_out, C)."""

    def __init__(self, kernel_size, stride=None, divisor: str = "active", ndim: int | None = None):
        super().__init__(kernel_size, stride, ndim)
        if divisor not in ("active", "kernel"):
            raise ValueError(f"divisor must be 'active' or 'kernel', got {divisor!r}")
        self.divisor = divisor

    def forward(self, x: SparseTensor) -> SparseTensor:
        kmap = self.kernel_map(x)
        total = x.feats.new_zeros(kmap.num_out, x.num_channels)
        count = x.feats.new_zeros(kmap.num_out, 1)
        for _, in_idx, out_idx in kmap.entries:
            total = total.index_add(0, out_idx, x.feats.index_select(0, in_idx))
            count.index_add_(0, out_idx, count.new_ones(out_idx.numel(), 1))
        if self.divisor == "kernel":
            return kmap.output(x, total / kmap.geometry.volume)
        return kmap.output(x, total / count)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, divisor={self.divisor!r}"
