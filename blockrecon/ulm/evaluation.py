"""Scoring a detection network on an acquisition with its ground truth (PALA rules), and
choosing the occupancy threshold its 8x map is decoded with.

The network's detections in every block are decoded to positions (lambda) and scored with
:func:`blockrecon.ulm.metrics.localization_scores`, the same rules as conventional ULM.

A network trained with a Dice loss rarely puts occupancy > 0.5 on the exact 1/16-pixel cell of
a bubble early in training: its fine map spreads a bubble over a few cells. The decoding
threshold is therefore a property of the trained model, chosen on training data by
:func:`calibrate_threshold` (the Jaccard-maximizing value of a grid) and stored in the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from blockrecon.sparse import SparseTensor
from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.blocks import UlmBlocks, acquisition_blocks
from blockrecon.ulm.decode import decode_occupancy
from blockrecon.ulm.metrics import LocalizationScores, localization_scores
from blockrecon.ulm.training import UlmModel, predict

#: Thresholds tried by :func:`calibrate_threshold`.
DECODE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def score_logits(
    logits: Iterable[torch.Tensor | SparseTensor],
    blocks: UlmBlocks,
    acquisition: UlmAcquisition,
    threshold: float,
    split_radius: float | None,
) -> LocalizationScores:
    """Decode the 8x occupancy logits of each block of ``blocks`` (one (1, T, *fine) dense or
    sparse map per block, in order) and score them against ``acquisition``'s truth on the frames
    the blocks cover (see :func:`blockrecon.ulm.decode.decode_occupancy`)."""
    found = [
        decode_occupancy(
            out,
            blocks.pixel_size,
            8,
            threshold,
            first_frames=blocks.first_frames[start : start + 1],
            split_radius=split_radius,
        )
        for start, out in enumerate(logits)
    ]
    used = acquisition.frames < blocks.inputs.shape[0] * blocks.inputs.shape[2]
    return localization_scores(
        acquisition.positions[used],
        acquisition.frames[used],
        torch.cat([f.positions for f in found]),
        torch.cat([f.frames for f in found]),
    )


def _scores(
    model: UlmModel,
    acquisition: UlmAcquisition,
    block_frames: int,
    thresholds: Sequence[float],
    progress: bool,
) -> list[LocalizationScores]:
    """Scores of the detections decoded at each threshold (one network pass)."""
    blocks = acquisition_blocks(acquisition, block_frames)
    outputs = predict(model, blocks, progress=progress)
    return [
        score_logits(
            [out[8] for out in outputs], blocks, acquisition, threshold, model.split_radius
        )
        for threshold in thresholds
    ]


def evaluate_model(
    model: UlmModel, acquisition: UlmAcquisition, block_frames: int, progress: bool = True
) -> LocalizationScores:
    """Detect bubbles in every block of ``acquisition`` (decoded at ``model.threshold``) and
    score them against its truth.

    Positions are converted to lambda with the acquisition's pixel size; only the frames covered
    by whole blocks of ``block_frames`` are scored.
    """
    return _scores(model, acquisition, block_frames, [model.threshold], progress)[0]


def calibrate_threshold(
    model: UlmModel,
    acquisitions: Sequence[UlmAcquisition],
    block_frames: int,
    thresholds: Sequence[float] = DECODE_THRESHOLDS,
    progress: bool = True,
) -> dict[float, float]:
    """Set ``model.threshold`` to the threshold of largest Jaccard index on ``acquisitions``
    (true and false positives pooled over them); returns {threshold: Jaccard}."""
    if not acquisitions or not all(0 < t < 1 for t in thresholds) or not thresholds:
        raise ValueError("need at least one acquisition and thresholds in (0, 1)")
    per_acquisition = [
        _scores(model, acq, block_frames, thresholds, progress) for acq in acquisitions
    ]
    jaccard = {}
    for i, threshold in enumerate(thresholds):
        tp, fp, fn = (
            sum(getattr(s[i], name) for s in per_acquisition)
            for name in ("true_positives", "false_positives", "false_negatives")
        )
        jaccard[float(threshold)] = tp / max(tp + fp + fn, 1)
    model.threshold = max(jaccard, key=jaccard.get)
    return jaccard
