"""Sparse convolution and transposed convolution: gather -> matmul -> index_add per kernel offset.

Weights are stored (kernel volume, C_in, C_out), kernel offsets in row-major order, so that
``weight[k]`` multiplies the input rows paired by offset k. ``dense_weight()`` returns torch's
layout for comparison with (or loading from) dense layers. The autograd function saves only the
input features and the weight; backward re-gathers through the cached kernel map.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from blockrecon.checks import check_positive_int
from blockrecon.sparse.kernel_map import KernelMap, as_tuple, kernel_map
from blockrecon.sparse.tensor import SparseTensor


def _add_rows(out: torch.Tensor, rows: torch.Tensor | None, values: torch.Tensor) -> None:
    """out[rows] += values (rows unique; None = all rows in order)."""
    if rows is None:
        out += values
    else:
        out.index_add_(0, rows, values)


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, kmap: KernelMap):
        ctx.save_for_backward(feats, weight)
        ctx.kmap = kmap
        out = feats.new_zeros(kmap.num_out, weight.shape[2])
        for j, in_idx, out_idx in kmap.entries:
            rows = feats if in_idx is None else feats.index_select(0, in_idx)
            _add_rows(out, out_idx, rows @ weight[j])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        need_feats, need_weight = ctx.needs_input_grad[:2]
        grad_feats = torch.zeros_like(feats) if need_feats else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        for j, in_idx, out_idx in ctx.kmap.entries:
            grads = grad_out if out_idx is None else grad_out.index_select(0, out_idx)
            if need_feats:
                _add_rows(grad_feats, in_idx, grads @ weight[j].T)
            if need_weight:
                rows = feats if in_idx is None else feats.index_select(0, in_idx)
                grad_weight[j] = rows.T @ grads
        return grad_feats, grad_weight, None


def sparse_conv(
    x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None, kmap: KernelMap
) -> SparseTensor:
    """Apply weight (kernel volume, C_in, C_out) and bias (C_out,) along ``kmap``."""
    feats = _SparseConvFunction.apply(x.feats, weight, kmap)
    if bias is not None:
        feats = feats + bias
    return kmap.output(x, feats)


def infer_ndim(ndim: int | None, *values) -> int:
    """``ndim`` when given, else the common length of the tuple-valued ``values`` (kernel size,
    stride...), 3 when all are ints; ValueError when the lengths disagree."""
    if ndim is not None:
        return ndim
    lengths = {len(v) for v in values if not isinstance(v, int)}
    if len(lengths) > 1:
        raise ValueError("per-dimension arguments have different lengths")
    return lengths.pop() if lengths else 3


class _SparseConvBase(nn.Module):
    kind = ""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        dilation=1,
        padding=0,
        output_padding=0,
        bias: bool = True,
        ndim: int | None = None,
    ):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        ndim = infer_ndim(ndim, kernel_size, stride, dilation, padding)
        if ndim not in (2, 3, 4):
            raise ValueError(f"ndim must be 2, 3 or 4, got {ndim}")
        self.ndim = ndim
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_tuple(kernel_size, ndim, "kernel_size", 1)
        self.stride = as_tuple(stride, ndim, "stride", 1)
        self.dilation = as_tuple(dilation, ndim, "dilation", 1)
        self.padding = as_tuple(padding, ndim, "padding", 0)
        self.output_padding = as_tuple(output_padding, ndim, "output_padding", 0)
        volume = math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # Kaiming (He) normal for ReLU: std = sqrt(2 / inputs summed per output site).
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / self._fan_in()))

    def _fan_in(self) -> float:
        return self.in_channels * math.prod(self.kernel_size)

    def kernel_map(self, x: SparseTensor) -> KernelMap:
        """The (cached) kernel map this layer uses on ``x``."""
        return kernel_map(
            x,
            self.kind,
            self.kernel_size,
            self.stride,
            self.dilation,
            self.padding,
            self.output_padding,
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"expected a SparseTensor, got {type(x).__name__}")
        if x.ndim != self.ndim or x.num_channels != self.in_channels:
            raise ValueError(
                f"layer expects {self.ndim}D input with {self.in_channels} channels, "
                f"got {x.ndim}D with {x.num_channels}"
            )
        return sparse_conv(x, self.weight, self.bias, self.kernel_map(x))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kind={self.kind}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, "
            f"dilation={self.dilation}, padding={self.padding}"
        )


class SparseConv(_SparseConvBase):
    """Sparse convolution on D = 2, 3 or 4 dimensions (anisotropic kernel, stride, dilation).

    ``submanifold`` (default: when stride is 1): output sites = input sites, equal to dense
    ``conv{D}d(padding='same')`` on the zero-filled input, read at the active sites.
    Otherwise (generalized/strided): equal to dense conv with this stride, dilation and padding,
    read at every output site reached by an active input (kernel == stride: the coarse sites
    with an active child); output stride = input stride * stride.

    Args: in_channels, out_channels; kernel_size, stride, dilation, padding: int or D ints;
    bias; ndim: D when every size is an int (default 3).
    Shapes: feats (N, in_channels) -> (N_out, out_channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        dilation=1,
        padding=0,
        bias: bool = True,
        submanifold: bool | None = None,
        ndim: int | None = None,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, dilation, padding, bias=bias, ndim=ndim
        )
        if submanifold is None:
            submanifold = all(s == 1 for s in self.stride) and not any(self.padding)
        if submanifold and (any(s != 1 for s in self.stride) or any(self.padding)):
            raise ValueError("a submanifold convolution has stride 1 and implicit 'same' padding")
        self.kind = "submanifold" if submanifold else "conv"

    def dense_weight(self) -> torch.Tensor:
        """Weight in torch conv layout (C_out, C_in, *kernel_size), differentiable."""
        return self.weight.permute(2, 1, 0).reshape(
            self.out_channels, self.in_channels, *self.kernel_size
        )


class SparseConvTranspose(_SparseConvBase):
    """Sparse transposed convolution (upsampling) on D = 2, 3 or 4 dimensions.

    Equal to dense ``conv_transpose{D}d`` (same stride, dilation, padding, output_padding) on
    the zero-filled input, read at the output sites: every site reached from an active input
    (kernel == stride: all children of the active sites). Output stride = input stride / stride.
    Shapes: feats (N, in_channels) -> (N_out, out_channels).
    """

    kind = "transpose"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        dilation=1,
        padding=0,
        output_padding=0,
        bias: bool = True,
        ndim: int | None = None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            dilation,
            padding,
            output_padding,
            bias,
            ndim,
        )

    def _fan_in(self) -> float:
        # inputs summed per output site, averaged over the output grid
        return max(1.0, self.in_channels * math.prod(self.kernel_size) / math.prod(self.stride))

    def dense_weight(self) -> torch.Tensor:
        """Weight in torch conv_transpose layout (C_in, C_out, *kernel_size), differentiable."""
        return self.weight.permute(1, 2, 0).reshape(
            self.in_channels, self.out_channels, *self.kernel_size
        )
