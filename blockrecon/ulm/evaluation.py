"""Scoring a detection network on an acquisition with its ground truth (PALA rules).

The network's detections in every block are decoded to positions (lambda) and scored with
:func:`blockrecon.ulm.metrics.localization_scores`, the same rules as conventional ULM.
"""

from __future__ import annotations

import torch

from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.decode import decode_occupancy
from blockrecon.ulm.metrics import LocalizationScores, localization_scores
from blockrecon.ulm.training import UlmModel, predict


def evaluate_model(model: UlmModel, acquisition: UlmAcquisition, block_frames: int,
                   progress: bool = True) -> LocalizationScores:
    """Detect bubbles in every block of ``acquisition`` and score them against its truth.

    Positions are converted to lambda with the acquisition's pixel size; only the frames covered
    by whole blocks of ``block_frames`` are scored.
    """
    blocks = acquisition_blocks(acquisition, block_frames)
    positions, frames = [], []
    for start, out in enumerate(predict(model, blocks, progress=progress)):
        found = decode_occupancy(out[8], blocks.pixel_size, 8,
                                 first_frames=blocks.first_frames[start:start + 1])
        positions.append(found.positions)
        frames.append(found.frames)
    used = acquisition.frames < blocks.inputs.shape[0] * block_frames
    return localization_scores(acquisition.positions[used], acquisition.frames[used],
                               torch.cat(positions), torch.cat(frames))
