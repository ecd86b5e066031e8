"""Structured L1 filter pruning of U-Nets with Torch-Pruning (no retraining).

Whole filters with the smallest L1 norm are removed and every layer that consumes them
(BatchNorm, the next convolution, the decoder convolution that receives the skip through
the concatenation) is shrunk accordingly, following Torch-Pruning's dependency graph. The
head (class logits) is never pruned.
"""

from __future__ import annotations

import copy

import torch

from blockrecon.nn.unet import UNet
from blockrecon.seg.sparsity import filter_groups


def count_macs_params(model: UNet, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of one forward pass on ``example``."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


@torch.no_grad()
def fold_batchnorm(model: UNet) -> UNet:
    """An equivalent U-Net without BatchNorm: eval-mode BatchNorm folded into the convolutions.

    Each conv + BatchNorm pair becomes one conv with kernel ``w * g / sqrt(v + eps)`` and bias
    ``(b - m) * g / sqrt(v + eps) + beta``. The result (``norm=None``) gives the same outputs
    as ``model.eval()``, and its filter norms measure what each filter contributes.
    """
    if model.norm is None:
        return copy.deepcopy(model)
    folded = UNet(**{**model.config, "norm": None}).to(model.head.weight.dtype)
    src = [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    dst = [m for m in folded.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    bns = {
        id(conv): bn
        for block in model.modules()
        for conv, bn in zip(list(block.children()), list(block.children())[1:], strict=False)
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm)
    }
    for s, d in zip(src, dst, strict=True):
        weight, bias = s.weight, s.bias if s.bias is not None else torch.zeros(d.bias.shape)
        bn = bns.get(id(s))
        if bn is not None:
            scale = bn.weight / (bn.running_var + bn.eps).sqrt()
            weight = weight * scale.view(-1, *[1] * (weight.dim() - 1))
            bias = (bias - bn.running_mean) * scale + bn.bias
        d.weight.copy_(weight)
        d.bias.copy_(bias)
    return folded.train(model.training)


def zero_filter_fraction(model: UNet) -> float:
    """Fraction of the effective filters (BatchNorm folded, head excluded) that are all zero."""
    zero = total = 0
    for group in filter_groups(fold_batchnorm(model)):
        weight, axis = group[0]
        norms = weight.detach().movedim(axis, 0).reshape(weight.shape[axis], -1).abs().sum(1)
        zero += int((norms == 0).sum())
        total += norms.numel()
    return zero / total


def _filter_l1(model: UNet) -> list[tuple[torch.nn.Module, torch.Tensor]]:
    """(layer, mean absolute weight of each output filter) for every prunable layer."""
    layers = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd) and m is not model.head:
            axis = 1 if m.transposed else 0
            w = m.weight.detach().movedim(axis, 0)
            layers.append((m, w.reshape(w.shape[0], -1).abs().mean(dim=1)))
    return layers


def _removal_plan(layers, ratio: float, global_ranking: bool) -> list[torch.Tensor]:
    """Indices of the filters to remove in each layer (at least one filter always kept)."""
    if not global_ranking:
        return [imp.argsort()[: min(int(ratio * len(imp)), len(imp) - 1)] for _, imp in layers]
    scores = torch.cat([imp for _, imp in layers])
    layer_of = torch.cat([torch.full((len(imp),), i) for i, (_, imp) in enumerate(layers)])
    budget = int(ratio * len(scores))
    left = [len(imp) for _, imp in layers]
    chosen: list[list[int]] = [[] for _ in layers]
    offsets = [0]
    for _, imp in layers:
        offsets.append(offsets[-1] + len(imp))
    for flat in scores.argsort().tolist():
        if budget == 0:
            break
        i = int(layer_of[flat])
        if left[i] > 1:
            chosen[i].append(flat - offsets[i])
            left[i] -= 1
            budget -= 1
    return [torch.tensor(c, dtype=torch.long) for c in chosen]


def prune_filters(
    model: UNet,
    ratio: float,
    example: torch.Tensor,
    *,
    global_ranking: bool = False,
    inplace: bool = False,
) -> UNet:
    """Remove the fraction ``ratio`` of filters, smallest L1 norm first.

    A filter's importance is the L1 norm of its own kernel (Li et al., "Pruning filters for
    efficient ConvNets"), divided by the kernel's size so that layers of different fan-in
    compare under ``global_ranking``. Torch-Pruning's dependency graph shrinks every layer
    that consumes a removed filter (the next convolution, the decoder convolution that receives
    it through the skip concatenation). A network with BatchNorm is first folded
    (:func:`fold_batchnorm`) so that the norms are those of the effective filters; the result
    then has ``norm=None``.

    Args:
        model: a U-Net (any dim); left untouched unless ``inplace`` (and without BatchNorm).
        ratio: fraction of the filters to remove, in [0, 1); the head is never pruned.
        example: an input batch the network accepts (used to trace the dependency graph).
        global_ranking: rank all filters of the network together (layers lose different
            fractions, one filter always kept) instead of removing ``ratio`` of every layer.

    Returns:
        the pruned network; its ``config["widths"]`` records the new widths so that
        :func:`blockrecon.seg.checkpoint.load_model` rebuilds it.
    """
    import torch_pruning as tp

    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    if model.norm is not None:
        model = fold_batchnorm(model)
    elif not inplace:
        model = copy.deepcopy(model)
    layers = _filter_l1(model)
    plan = _removal_plan(layers, ratio, global_ranking)
    if not any(len(idx) for idx in plan):
        return model
    was_training = model.training
    model.eval()
    with torch.enable_grad():  # the dependency graph is traced with autograd
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        for (layer, _), idx in zip(layers, plan, strict=True):
            if len(idx):
                fn = graph.get_pruner_of_module(layer).prune_out_channels
                graph.get_pruning_group(layer, fn, idxs=idx.tolist()).prune()
    return model.train(was_training)
