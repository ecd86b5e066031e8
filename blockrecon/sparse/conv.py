"""Sparse convolution and transposed convolution along a kernel map, in one of two forms.

- Pairs form (sparse neighbourhoods, all strided and transposed maps): the pairs of many
  offsets at once are gathered (one index_select, chunks of CHUNK_PAIRS pairs), multiplied
  (one matmul per offset into one buffer) and added to their outputs offset by offset
  (within an offset every row appears once: gather, add, write back).
- Neighbour-table form (submanifold maps of odd kernels with dense neighbourhoods): each
  output gathers its K inputs side by side (missing ones read a zero row) and one matmul with
  the (K * C_in, C_out) weight gives the output, in chunks of CHUNK_FLOATS floats. Backward
  uses the mirrored offsets, so it gathers too and never scatters.

Both sum in a fixed order (offset by offset, each offset's rows unique, so also on CUDA);
weight gradients are summed over fixed blocks of rows (:func:`_outer_sum`). Results therefore
do not depend on the thread count.

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

#: Pairs gathered at once (one index_select and one product buffer for up to this many pairs):
#: 2^17 pairs x 16 + 16 float32 channels = 16 MiB of temporaries. Outputs are still added one
#: offset at a time (see :func:`_add_segments`): one index_add_ over several offsets (repeated
#: rows) was slower (1 thread: 15.5 ms against 9.4 ms for 26 x 5000 rows of 16 channels).
CHUNK_PAIRS = 2**17


def _chunks(kmap: KernelMap):
    """Groups of consecutive segments gathered together (see CHUNK_PAIRS)."""
    return kmap.packed().chunks(CHUNK_PAIRS)


def _add_segments(out, index, values, segments, start) -> None:
    """out[index[a:b]] += values[a - start : b - start] for each segment, in offset order.

    A segment's rows are unique, so this reads, adds and writes back (index_select, add_,
    index_copy_): the same single addition per row as index_add_, which in this torch build
    goes through scatter_add_ and was 3.7x slower at 1 thread (26 x 5000 rows of 16 channels:
    21 ms against 5.7 ms) and 3.8x slower with 2 threads on a loaded machine."""
    for _, a, b in segments:
        rows = index[a:b]
        out.index_copy_(0, rows, out.index_select(0, rows).add_(values[a - start : b - start]))


def _products(rows, weights, segments, start, transpose=False):
    """(P, C') per-offset products ``rows[s:e] @ weights[j]`` (or ``weights[j].T``) of the
    segments, in place of one buffer; ``start`` is the first segment's start."""
    out = rows.new_empty(rows.shape[0], weights.shape[1 if transpose else 2])
    for j, a, b in segments:
        w = weights[j].T if transpose else weights[j]
        torch.mm(rows[a - start : b - start], w, out=out[a - start : b - start])
    return out


#: Rows per block of a weight gradient's reduction (see :func:`_outer_sum`).
OUTER_BLOCK = 256


def _outer_sum(rows: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``rows.T @ grads`` ((P, C) and (P, C') -> (C, C')), summed over fixed blocks of
    OUTER_BLOCK rows (one small matmul each, then a sequential sum), so that the result does
    not depend on the thread count: one long matmul lets the BLAS split the reduction between
    threads (measured with MKL: 1 and 2 threads differ in the last bits from 1024 rows)."""
    full = rows.shape[0] // OUTER_BLOCK * OUTER_BLOCK
    tail = rows[full:].T @ grads[full:]
    if not full:
        return tail
    blocks = torch.bmm(
        rows[:full].reshape(-1, OUTER_BLOCK, rows.shape[1]).transpose(1, 2),
        grads[:full].reshape(-1, OUTER_BLOCK, grads.shape[1]),
    )
    return blocks.cumsum(0)[-1] + tail


#: Floats gathered at once by the neighbour-table form (rows x kernel volume x channels):
#: 2^18 = 1 MiB of float32, so that the gathered block is still in cache for its matmul
#: (measured on a ULM training step, 1 thread: 16 MiB chunks 390 ms, 4 MiB 299, 1 MiB 283,
#: 0.5 MiB 287, 0.25 MiB 308).
CHUNK_FLOATS = 2**18


def _row_chunks(rows: int, width: int) -> list[tuple[int, int]]:
    """Row ranges of at most CHUNK_FLOATS / width rows (a multiple of OUTER_BLOCK)."""
    step = max(CHUNK_FLOATS // max(width, 1) // OUTER_BLOCK, 1) * OUTER_BLOCK
    return [(a, min(a + step, rows)) for a in range(0, rows, step)] or [(0, 0)]


def _with_zero_row(feats: torch.Tensor) -> torch.Tensor:
    """feats (N, C) with a row of zeros appended: the input a missing neighbour (index N) reads."""
    return torch.cat([feats, feats.new_zeros(1, feats.shape[1])])


def _gathered(extended: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """(R, K * C): row r holds the rows of ``extended`` (N + 1, C) of the K inputs of
    neighbours[r] (K,) side by side."""
    rows = extended.index_select(0, neighbours.reshape(-1))
    return rows.reshape(neighbours.shape[0], -1)


def _table_forward(feats, weight, neighbours):
    """out[r] = sum_k feats[neighbours[r, k]] @ weight[k]: one gather, one matmul per chunk."""
    flat = weight.reshape(-1, weight.shape[2])
    out = feats.new_empty(neighbours.shape[0], weight.shape[2])
    extended = _with_zero_row(feats)
    for a, b in _row_chunks(neighbours.shape[0], flat.shape[0]):
        torch.mm(_gathered(extended, neighbours[a:b]), flat, out=out[a:b])
    return out


def _table_backward(feats, weight, neighbours, grad_out, need_feats, need_weight):
    """Gradients of :func:`_table_forward`. The map is submanifold with an odd kernel, so output
    j takes input i through offset k exactly when i takes j through K-1-k: with G (R, K * C_out)
    the gathered grad_out rows of the neighbours, the feature gradient is G @ (flipped,
    transposed weight) and the weight gradient feats^T @ G (flipped): one gather for both."""
    volume, c_in, c_out = weight.shape
    grad_feats = feats.new_empty(feats.shape) if need_feats else None
    flipped = weight.flip(0).transpose(1, 2).reshape(-1, c_in)
    total = torch.zeros(c_in, volume * c_out, dtype=weight.dtype, device=weight.device)
    extended = _with_zero_row(grad_out)
    for a, b in _row_chunks(neighbours.shape[0], volume * max(c_in, c_out)):
        gathered = _gathered(extended, neighbours[a:b])
        if need_feats:
            torch.mm(gathered, flipped, out=grad_feats[a:b])
        if need_weight:
            total += _outer_sum(feats[a:b], gathered)
    grad_weight = None
    if need_weight:
        grad_weight = total.reshape(c_in, volume, c_out).permute(1, 0, 2).flip(0).contiguous()
    return grad_feats, grad_weight


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, kmap: KernelMap):
        ctx.save_for_backward(feats, weight)
        ctx.kmap = kmap
        if kmap.neighbours is not None:
            return _table_forward(feats, weight, kmap.neighbours)
        pairs = kmap.packed()
        out = feats.new_zeros(kmap.num_out, weight.shape[2])
        for group in _chunks(kmap):
            j, a, _ = group[0]
            if a is None:
                out += feats @ weight[j]
                continue
            b = group[-1][2]
            rows = feats.index_select(0, pairs.in_idx[a:b])
            _add_segments(out, pairs.out_idx, _products(rows, weight, group, a), group, a)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        need_feats, need_weight = ctx.needs_input_grad[:2]
        if ctx.kmap.neighbours is not None:
            grads = _table_backward(
                feats, weight, ctx.kmap.neighbours, grad_out, need_feats, need_weight
            )
            return (*grads, None)
        pairs = ctx.kmap.packed()
        grad_feats = torch.zeros_like(feats) if need_feats else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        for group in _chunks(ctx.kmap):
            j, a, _ = group[0]
            if a is None:
                if need_feats:
                    grad_feats += grad_out @ weight[j].T
                if need_weight:
                    grad_weight[j] = _outer_sum(feats, grad_out)
                continue
            b = group[-1][2]
            grads = grad_out.index_select(0, pairs.out_idx[a:b])
            if need_feats:
                products = _products(grads, weight, group, a, transpose=True)
                _add_segments(grad_feats, pairs.in_idx, products, group, a)
            if need_weight:
                rows = feats.index_select(0, pairs.in_idx[a:b])
                for k, s, e in group:
                    grad_weight[k] = _outer_sum(rows[s - a : e - a], grads[s - a : e - a])
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
