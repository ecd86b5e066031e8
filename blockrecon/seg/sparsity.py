"""Group sparsity on whole filters: which parameters make a filter, and the group-lasso step.

Training with the proximal group-lasso step drives the filters the data do not need to exactly
zero, so that structured pruning (:mod:`blockrecon.seg.prune`) removes them without changing
the output.
"""

from __future__ import annotations

import torch
from torch import nn

from blockrecon.nn.unet import UNet


def filter_groups(model: UNet) -> list[list[tuple[torch.Tensor, int]]]:
    """Per prunable layer, the (parameter, filter axis) pairs that decide its output filters.

    Without normalization a filter is its kernel slice and bias. With BatchNorm it is the
    BatchNorm's weight and bias (the kernel's scale is normalized away): when both are zero
    the channel is zero. The head is excluded.
    """
    groups = []
    for module in model.modules():
        children = list(module.children())
        for i, m in enumerate(children):
            if m is model.head or not isinstance(m, nn.modules.conv._ConvNd):
                continue
            nxt = children[i + 1] if i + 1 < len(children) else None
            if isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                groups.append([(nxt.weight, 0), (nxt.bias, 0)])
            else:
                groups.append(
                    [(m.weight, 1 if m.transposed else 0)]
                    + ([(m.bias, 0)] if m.bias is not None else [])
                )
    return groups


@torch.no_grad()
def shrink_filters(groups: list[list[tuple[torch.Tensor, int]]], threshold: float) -> None:
    """Proximal step of the group lasso: scale each filter by max(0, 1 - threshold/norm)."""
    for group in groups:
        sq = sum(
            p.movedim(axis, 0).reshape(p.shape[axis], -1).square().sum(dim=1) for p, axis in group
        )
        scale = (1 - threshold / sq.sqrt().clamp_min(1e-12)).clamp_min(0)
        for p, axis in group:
            p.mul_(
                scale.view(-1, *([1] * (p.dim() - 1 - axis)))
                if axis == 0
                else scale.view(1, -1, *([1] * (p.dim() - 2)))
            )
