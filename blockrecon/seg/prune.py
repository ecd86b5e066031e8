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


def prune_filters(model: UNet, ratio: float, example: torch.Tensor,
                  inplace: bool = False) -> UNet:
    """Remove the fraction ``ratio`` of filters of every layer, smallest L1 norm first.

    Args:
        model: a U-Net (any dim); left untouched unless ``inplace``.
        ratio: fraction of filters to remove per layer, in [0, 1).
        example: an input batch the network accepts (used to trace the dependency graph).

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
    pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=[model.head])
    pruner.step()
    return model.train(was_training)
