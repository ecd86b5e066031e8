"""Scoring a detection network on an acquisition with its ground truth (PALA rules).

Per frame, true and detected bubbles are paired greedily by increasing distance; a pair closer
than lambda/4 is a true positive. Jaccard = TP / (TP + FP + FN); RMSE (lambda) over the pairs
closer than lambda/2.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist

from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.decode import decode_occupancy
from blockrecon.ulm.training import UlmModel, predict

TP_RADIUS, RMSE_RADIUS = 0.25, 0.5


def _greedy_distances(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Distances of greedy one-to-one pairs (closest first), up to RMSE_RADIUS."""
    if not len(truth) or not len(found):
        return np.zeros(0)
    dist = cdist(truth, found)
    i, j = np.unravel_index(np.argsort(dist, axis=None), dist.shape)
    used_i, used_j, pairs = set(), set(), []
    for a, b in zip(i, j, strict=True):
        if dist[a, b] >= RMSE_RADIUS:
            break
        if a not in used_i and b not in used_j:
            used_i.add(a)
            used_j.add(b)
            pairs.append(dist[a, b])
    return np.asarray(pairs)


def score_detections(true_positions: torch.Tensor, true_frames: torch.Tensor,
                     positions: torch.Tensor, frames: torch.Tensor) -> dict[str, float]:
    """Precision, recall, Jaccard and RMSE (lambda) of detections against the truth."""
    truth, found = true_positions.double().numpy(), positions.double().numpy()
    tf, ff = true_frames.numpy(), frames.numpy()
    tp = 0
    sq = []
    for frame in np.union1d(tf, ff):
        pairs = _greedy_distances(truth[tf == frame], found[ff == frame])
        tp += int(np.count_nonzero(pairs < TP_RADIUS))
        sq.extend(pairs**2)
    fp, fn = len(found) - tp, len(truth) - tp
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "jaccard": tp / max(tp + fp + fn, 1),
            "rmse": float(np.sqrt(np.mean(sq))) if sq else float("nan"),
            "true": float(len(truth)), "detected": float(len(found))}


def evaluate_model(model: UlmModel, acquisition: UlmAcquisition, block_frames: int,
                   progress: bool = True) -> dict[str, float]:
    """Detect bubbles in every block of ``acquisition`` and score them (positions in lambda,
    converted with the acquisition's pixel size)."""
    blocks = acquisition_blocks(acquisition, block_frames)
    positions, frames = [], []
    for start, out in enumerate(predict(model, blocks, progress=progress)):
        found = decode_occupancy(out[8], blocks.pixel_size, 8,
                                 first_frames=blocks.first_frames[start:start + 1])
        positions.append(found.positions)
        frames.append(found.frames)
    used = acquisition.frames < blocks.inputs.shape[0] * block_frames
    return score_detections(acquisition.positions[used], acquisition.frames[used],
                            torch.cat(positions), torch.cat(frames))
