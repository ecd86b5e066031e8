"""Naive dense N-D references (explicit loop over kernel offsets) and sparse test inputs.

torch has no 4D convolution or pooling; these loops do any D and are themselves checked against
torch in 2D and 3D.
"""

import itertools

import torch
from torch.nn import functional as F

from blockrecon.sparse import SparseTensor


def _window(x, start, step, count):
    """x[..., start_i : start_i + step_i * (count_i - 1) + 1 : step_i] over the trailing dims."""
    index = [slice(None), slice(None)]
    index += [slice(a, a + s * (n - 1) + 1, s) for a, s, n in zip(start, step, count, strict=False)]
    return x[tuple(index)]


def _offsets(kernel):
    return itertools.product(*(range(k) for k in kernel))


def conv_nd(x, weight, bias=None, stride=1, dilation=1, padding=0, same=False):
    """Dense correlation, torch conv semantics; weight (C_out, C_in, *K)."""
    kernel = weight.shape[2:]
    ndim = len(kernel)
    stride, dilation = _expand(stride, ndim), _expand(dilation, ndim)
    if same:
        left = [d * (k - 1) // 2 for d, k in zip(dilation, kernel, strict=False)]
        pads = [(a, d * (k - 1) - a) for a, d, k in zip(left, dilation, kernel, strict=False)]
    else:
        pads = [(p, p) for p in _expand(padding, ndim)]
    x = F.pad(x, [v for pair in reversed(pads) for v in pair])
    out_shape = [
        (n - d * (k - 1) - 1) // s + 1
        for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=False)
    ]
    out = x.new_zeros(x.shape[0], weight.shape[0], *out_shape)
    for k in _offsets(kernel):
        start = [kk * d for kk, d in zip(k, dilation, strict=False)]
        patch = _window(x, start, stride, out_shape)
        out = out + torch.einsum("bi...,oi->bo...", patch, weight[(slice(None), slice(None), *k)])
    return out if bias is None else out + bias.view(1, -1, *[1] * ndim)


def conv_transpose_nd(x, weight, bias=None, stride=1, dilation=1, padding=0, output_padding=0):
    """Dense transposed convolution, torch semantics; weight (C_in, C_out, *K)."""
    kernel = weight.shape[2:]
    ndim = len(kernel)
    stride, dilation = _expand(stride, ndim), _expand(dilation, ndim)
    padding, output_padding = _expand(padding, ndim), _expand(output_padding, ndim)
    dims = zip(x.shape[2:], stride, dilation, kernel, output_padding, strict=True)
    full = [(n - 1) * s + d * (k - 1) + 1 + op for n, s, d, k, op in dims]
    out = x.new_zeros(x.shape[0], weight.shape[1], *full)
    for k in _offsets(kernel):
        start = [kk * d for kk, d in zip(k, dilation, strict=True)]
        contribution = torch.einsum("bi...,io->bo...", x, weight[(slice(None), slice(None), *k)])
        _window(out, start, stride, x.shape[2:]).add_(contribution)
    crop = [slice(p, n - p) for p, n in zip(padding, full, strict=True)]
    out = out[(slice(None), slice(None), *crop)]
    return out if bias is None else out + bias.view(1, -1, *[1] * ndim)


def pool_nd(x, kernel, stride, reduce):
    """Dense max ("max") or sum ("sum") pooling without padding."""
    out_shape = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride, strict=False)]
    windows = torch.stack([_window(x, k, stride, out_shape) for k in _offsets(kernel)])
    return windows.amax(0) if reduce == "max" else windows.sum(0)


def _expand(value, ndim):
    return (value,) * ndim if isinstance(value, int) else tuple(value)


def random_sparse(
    shape, channels, pattern="random", batch=2, density=0.3, seed=0, dtype=torch.float64
):
    """SparseTensor with leaf features; pattern: random (incl. two corners), empty, single,
    border (sites only on the grid faces)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, *shape, dtype=torch.bool)
    if pattern == "random":
        mask = torch.rand(batch, *shape, generator=gen) < density
        mask[(0, *[0] * len(shape))] = True
        mask[(batch - 1, *[n - 1 for n in shape])] = True
    elif pattern == "single":
        mask[(batch - 1, *[n // 2 for n in shape])] = True
    elif pattern == "border":
        grids = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
        face = torch.zeros(shape, dtype=torch.bool)
        for g, n in zip(grids, shape, strict=False):
            face |= (g == 0) | (g == n - 1)
        mask = face.expand(batch, *shape) & (torch.rand(batch, *shape, generator=gen) < 0.6)
    x = torch.randn(batch, channels, *shape, generator=gen, dtype=dtype)
    sparse = SparseTensor.from_dense(x, mask=mask)
    return sparse.with_feats(sparse.feats.detach().requires_grad_())


def site_mask(x):
    """Bool (B, *spatial) occupancy of a SparseTensor."""
    ones = x.coords.new_ones(x.num_sites, 1).double()
    occupancy = SparseTensor(x.coords, ones, x.spatial_shape, batch_size=x.batch_size)
    return occupancy.to_dense()[:, 0] > 0
