"""Layers of the ULM networks, each with a dense and a sparse forward on the same weights.

Grids are spatio-temporal, time first: ``(T, *spatial)`` with 2 or 3 spatial axes, so a dense
activation is ``(B, C, T, *spatial)`` and a sparse one a :class:`~blockrecon.sparse.SparseTensor`
on a (1 + D)-dimensional grid. Weights live in the sparse engine's layout (``SparseConv``); the
dense forward uses ``dense_weight()``, so a dense and a sparse network built from these layers
load each other's ``state_dict``. On a fully active input the two forwards agree to rounding:
the sparse convolutions are submanifold (dense ``padding='same'`` read at the sites), pooling
and transposed convolutions have kernel == stride.

torch has no 4D convolution, so every convolution is factorized, in both forwards: a spatial
convolution per frame (kernel ``(1, k, ..., k)``) then a temporal one (``(k_t, 1, ..., 1)``).
"""

from __future__ import annotations

import math
import string

import torch
from torch import nn
from torch.nn import functional as F

from blockrecon.sparse import SparseConv, SparseConvTranspose, SparseMaxPool, SparseTensor
from blockrecon.sparse.conv import sparse_conv
from blockrecon.sparse.kernel_map import KernelMap, make_geometry
from blockrecon.sparse.tensor import linear_keys


def spatial_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Dense per-frame spatial convolution, 'same' padding.

    x (B, C, T, *S) with 2 or 3 spatial axes; weight (C_out, C, 1, *k). Returns (B, C_out, T, *S).
    """
    if x.ndim == 5:  # 2D + t: conv3d with a (1, k, k) kernel, no copy
        return F.conv3d(x, weight, bias, padding="same")
    b, c, t = x.shape[:3]
    frames = x.transpose(1, 2).reshape(b * t, c, *x.shape[3:])
    out = F.conv3d(frames, weight[:, :, 0], bias, padding="same")
    return out.reshape(b, t, *out.shape[1:]).transpose(1, 2)


def temporal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Dense temporal convolution, 'same' padding: x (B, C, T, *S), weight (C_out, C, k, 1...)."""
    flat = x.reshape(*x.shape[:3], -1)
    out = F.conv2d(flat, weight.reshape(*weight.shape[:3], 1), bias, padding="same")
    return out.reshape(out.shape[0], out.shape[1], *x.shape[2:])


def max_pool(x: torch.Tensor, kernel: tuple[int, ...]) -> torch.Tensor:
    """Dense max pooling with kernel == stride ``(k_t, k_s, ...)`` on (B, C, T, *S).

    Max is separable: a spatial pass with time folded into channels, then a temporal pass.
    """
    b, c, t = x.shape[:3]
    spatial = F.max_pool3d if x.ndim == 6 else F.max_pool2d
    x = spatial(x.reshape(b, c * t, *x.shape[3:]), kernel[1:])
    x = x.reshape(b, c, t, *x.shape[2:])
    pooled = F.max_pool2d(x.reshape(b, c, t, -1), (kernel[0], 1))
    return pooled.reshape(b, c, pooled.shape[2], *x.shape[3:])


def shuffle_transpose(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Dense transposed convolution with kernel == stride on any number of grid axes.

    x (B, C, *G); weight (C, C_out, *k). Each input site writes ``weight[:, :, o]`` times its
    features to its child ``site * k + o``. Returns (B, C_out, *(G * k)).
    """
    grid = x.shape[2:]
    kernel = weight.shape[2:]
    if len(grid) == 3:
        return F.conv_transpose3d(x, weight, bias, stride=tuple(kernel))
    letters = string.ascii_lowercase[: len(grid)]
    upper = letters.upper()
    inter = "".join(g + k for g, k in zip(letters, upper, strict=True))
    out = torch.einsum(f"xy{letters},yz{upper}->xz{inter}", x, weight)
    out = out.reshape(
        x.shape[0], weight.shape[1], *(g * k for g, k in zip(grid, kernel, strict=True))
    )
    if bias is not None:
        out = out + bias.reshape(1, -1, *(1,) * len(grid))
    return out


class FactorizedConv(nn.Module):
    """Spatial conv (1, k, ..., k) -> ReLU -> temporal conv (k_t, 1, ..., 1) -> ReLU.

    Args:
        in_channels, out_channels: channel counts.
        spatial_dims: 2 or 3.
        kernel: spatial kernel size k (odd); kernel_t: temporal kernel size (odd).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int,
        kernel: int = 3,
        kernel_t: int = 3,
    ):
        super().__init__()
        ndim = 1 + spatial_dims
        self.spatial = SparseConv(
            in_channels, out_channels, (1,) + (kernel,) * spatial_dims, ndim=ndim
        )
        self.temporal = SparseConv(
            out_channels, out_channels, (kernel_t,) + (1,) * spatial_dims, ndim=ndim
        )

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(spatial_conv(x, self.spatial.dense_weight(), self.spatial.bias))
        return torch.relu(temporal_conv(x, self.temporal.dense_weight(), self.temporal.bias))

    def forward_sparse(self, x: SparseTensor) -> SparseTensor:
        x = self.spatial(x)
        x = self.temporal(x.with_feats(torch.relu(x.feats)))
        return x.with_feats(torch.relu(x.feats))


class PointwiseConv(nn.Module):
    """1x1 convolution (a linear map of each site's features), e.g. an occupancy head."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int):
        super().__init__()
        self.conv = SparseConv(in_channels, out_channels, 1, ndim=1 + spatial_dims)

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight[0]  # (C_in, C_out)
        out = torch.einsum("bc...,co->bo...", x, weight)
        return out + self.conv.bias.reshape(1, -1, *(1,) * (x.ndim - 2))

    def forward_sparse(self, x: SparseTensor) -> SparseTensor:
        return self.conv(x)


class Pool(nn.Module):
    """Max pooling, kernel == stride ``(k_t, k_s, ..., k_s)``."""

    def __init__(self, kernel_t: int, kernel_s: int, spatial_dims: int):
        super().__init__()
        self.kernel = (kernel_t,) + (kernel_s,) * spatial_dims
        self.sparse = SparseMaxPool(self.kernel, ndim=1 + spatial_dims)

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool(x, self.kernel)

    def forward_sparse(self, x: SparseTensor) -> SparseTensor:
        return self.sparse(x)


class Upsample(nn.Module):
    """Transposed convolution with kernel == stride ``(k_t, k_s, ..., k_s)``, then ReLU.

    The sparse forward writes to every child of the active sites, or, given ``target``, only
    to the target's sites (each must have its parent among the input's sites): the decoder uses
    this to land on the encoder's sites at the same scale, so skips concatenate site by site.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_t: int, kernel_s: int, spatial_dims: int
    ):
        super().__init__()
        kernel = (kernel_t,) + (kernel_s,) * spatial_dims
        self.conv = SparseConvTranspose(
            in_channels, out_channels, kernel, stride=kernel, ndim=1 + spatial_dims
        )

    def forward_dense(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Dense grids are complete: ``target`` (the skip at the output scale) is not needed."""
        return torch.relu(shuffle_transpose(x, self.conv.dense_weight(), self.conv.bias))

    def forward_sparse(self, x: SparseTensor, target: SparseTensor | None = None) -> SparseTensor:
        if target is None:
            out = self.conv(x)
        else:
            out = sparse_conv(x, self.conv.weight, self.conv.bias, self._onto(x, target))
        return out.with_feats(torch.relu(out.feats))

    def _onto(self, x: SparseTensor, target: SparseTensor) -> KernelMap:
        """Kernel map from ``x`` to exactly ``target``'s sites (cached on ``x``)."""
        key = ("upsample_onto", self.conv.kernel_size, id(target.cache))
        cached = x.cache.get(key)
        if cached is not None and cached[0] is target.cache:
            return cached[1]
        stride = torch.tensor(self.conv.stride, device=x.device)
        spatial = target.coords[:, 1:]
        parents = torch.cat([target.coords[:, :1], spatial // stride], dim=1)
        parent_keys = linear_keys(parents, x.spatial_shape)
        rows = torch.searchsorted(x.keys(), parent_keys).clamp_(max=max(x.num_sites - 1, 0))
        if x.num_sites == 0 or not bool((x.keys()[rows] == parent_keys).all()):
            if target.num_sites:
                raise ValueError("upsampling target has sites whose parent is not active")
        offset = linear_keys(
            torch.cat([torch.zeros_like(spatial[:, :1]), spatial % stride], 1),
            self.conv.kernel_size,
        )
        entries = []
        for j in range(math.prod(self.conv.kernel_size)):
            out_rows = (offset == j).nonzero().squeeze(1)
            if out_rows.numel():
                entries.append((j, rows[out_rows], out_rows))
        geometry = make_geometry("transpose", x.ndim, self.conv.kernel_size, self.conv.stride)
        kmap = KernelMap.from_entries(
            geometry, entries, x.num_sites, target.coords, target.spatial_shape, target.cache
        )
        x.cache[key] = (target.cache, kmap)
        return kmap
