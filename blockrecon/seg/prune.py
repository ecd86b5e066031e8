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


def count_macs_params(model: UNet, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of one forward pass on ``example``."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def prune_filters(model: UNet, ratio: float, example: torch.Tensor, *,
                  global_ranking: bool = False, inplace: bool = False) -> UNet:
    """Remove the fraction ``ratio`` of filters, smallest L1 norm first.

    A filter's importance is the L1 norm of its own kernel (Li et al., "Pruning filters for
    efficient ConvNets"); the layers that consume it shrink with it.

    Args:
        model: a U-Net (any dim); left untouched unless ``inplace``.
        ratio: fraction of filters to remove per layer, in [0, 1).
        example: an input batch the network accepts (used to trace the dependency graph).
        global_ranking: rank all filters of the network together (layers lose different
            fractions, at most 90% each) instead of removing ``ratio`` from every layer.

    Returns:
        the pruned network; its ``config["widths"]`` records the new widths so that
        :func:`blockrecon.seg.checkpoint.load_model` rebuilds it.
    """
    import torch_pruning as tp

    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    if not inplace:
        model = copy.deepcopy(model)
    if ratio == 0.0:
        return model
    was_training = model.training
    model.eval()
    importance = tp.importance.MagnitudeImportance(p=1, group_reduction="first",
                                                   normalizer=None)
    pruner = tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=ratio,
                                  global_pruning=global_ranking, max_pruning_ratio=0.9,
                                  ignored_layers=[model.head])
    pruner.step()
    return model.train(was_training)
