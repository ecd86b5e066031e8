"""Layers that change the site set without a kernel: pruning, concatenation (skips), densifying."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from blockrecon.sparse.tensor import SparseTensor, decode_keys


def prune(x: SparseTensor, mask: torch.Tensor) -> SparseTensor:
    """Keep the sites where ``mask`` (N,) or (N, 1) bool is True; features stay differentiable.

    An occupancy head keeps ``prob.feats[:, 0] >= 0.5``. If every site is kept the result shares
    ``x``'s sites and cache.
    """
    if not isinstance(x, SparseTensor):
        raise ValueError(f"expected a SparseTensor, got {type(x).__name__}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool tensor")
    if mask.ndim == 2 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if tuple(mask.shape) != (x.num_sites,):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected ({x.num_sites},)")
    mask = mask.to(x.device)
    if bool(mask.all()):
        return x.with_feats(x.feats)
    return SparseTensor._trusted(
        x.coords[mask],
        x.feats[mask],
        x.spatial_shape,
        x.stride,
        x.batch_size,
        {"keys": x.keys()[mask]},
    )


class SparsePrune(nn.Module):
    """Module form of :func:`prune`: ``forward(x, mask)``."""

    def forward(self, x: SparseTensor, mask: torch.Tensor) -> SparseTensor:
        return prune(x, mask)


def cat(tensors: Sequence[SparseTensor]) -> SparseTensor:
    """Concatenate features along channels on the union of the sites; a site missing from an
    input gets zeros for that input's channels. Inputs share grid shape, stride and batch size."""
    tensors = list(tensors)
    if not tensors or not all(isinstance(t, SparseTensor) for t in tensors):
        raise ValueError("cat needs a non-empty sequence of SparseTensors")
    first = tensors[0]
    for t in tensors[1:]:
        if (t.spatial_shape, t.stride, t.batch_size, t.device) != (
            first.spatial_shape,
            first.stride,
            first.batch_size,
            first.device,
        ):
            raise ValueError("cat inputs must share spatial_shape, stride, batch_size and device")
    if all(t.cache is first.cache for t in tensors):
        return first.with_feats(torch.cat([t.feats for t in tensors], dim=1))
    keys = torch.unique(torch.cat([t.keys() for t in tensors]), sorted=True)
    parts = []
    for t in tensors:
        rows = torch.searchsorted(keys, t.keys())
        parts.append(t.feats.new_zeros(keys.numel(), t.num_channels).index_copy(0, rows, t.feats))
    feats = torch.cat(parts, dim=1)
    for t in tensors:
        if t.num_sites == keys.numel():
            return t.with_feats(feats)
    return SparseTensor._trusted(
        decode_keys(keys, first.spatial_shape),
        feats,
        first.spatial_shape,
        first.stride,
        first.batch_size,
        {"keys": keys},
    )


class SparseCat(nn.Module):
    """Module form of :func:`cat`: ``forward(*tensors)``."""

    def forward(self, *tensors: SparseTensor) -> SparseTensor:
        return cat(tensors)


class SparseToDense(nn.Module):
    """``x.to_dense(fill_value)``: (B, C, *spatial_shape)."""

    def __init__(self, fill_value: float = 0.0):
        super().__init__()
        self.fill_value = fill_value

    def forward(self, x: SparseTensor) -> torch.Tensor:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"expected a SparseTensor, got {type(x).__name__}")
        return x.to_dense(self.fill_value)
