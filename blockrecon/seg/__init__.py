"""Cardiac segmentation with lightweight, prunable U-Nets.

Data (:mod:`blockrecon.seg.data`: synthetic short-axis cine MRI; ACDC-style NIfTI files through
:mod:`blockrecon.io.acdc`), metrics
(Dice, HD95), training and inference, checkpoints that rebuild (pruned) architectures,
structured L1 filter pruning, and figures of the first-layer filters.
"""

from blockrecon.seg.checkpoint import load_model, load_weights, save_model
from blockrecon.seg.data import NUM_CLASSES, synthetic_cine
from blockrecon.seg.metrics import dice_per_class, evaluate_labels, hausdorff95
from blockrecon.seg.prune import (
    count_macs_params,
    fold_batchnorm,
    prune_filters,
    zero_filter_fraction,
)
from blockrecon.seg.train import build_model, predict, train_segmentation

__all__ = [
    "NUM_CLASSES",
    "build_model",
    "count_macs_params",
    "dice_per_class",
    "evaluate_labels",
    "fold_batchnorm",
    "hausdorff95",
    "load_model",
    "load_weights",
    "predict",
    "prune_filters",
    "save_model",
    "synthetic_cine",
    "train_segmentation",
    "zero_filter_fraction",
]
