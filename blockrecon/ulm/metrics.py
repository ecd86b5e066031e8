"""Localization metrics as in the PALA benchmark (Heiles et al. 2022).

In every frame, candidate (true, detected) pairs closer than ``pair_distance`` are sorted by
distance and paired greedily (each bubble and each detection used at most once). A pair closer
than ``tp_distance`` is a true positive; unpaired detections and pairs farther than that are
false positives, unpaired or farther true bubbles are false negatives. The localization RMSE is
taken over all pairs (closer than ``pair_distance``), and so is the mean localization error:
the figure PALA's code reports as "RMSE" is this mean of the per-pair Euclidean errors
(``PALA_SilicoFlow_fig.m``: ``mean(ErrList(:, 1))``), which is at most the root-mean-square.
Distances in lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from blockrecon.checks import check_positive
from blockrecon.ulm._checks import check_points


@dataclass(frozen=True)
class LocalizationScores:
    """Counts and rates over all frames. Rates are NaN when undefined (0 / 0).

    ``rmse`` is the root-mean-square and ``mean_error`` the mean of the pairs' distances
    (lambda); PALA reports the latter under the name RMSE.
    """

    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    jaccard: float
    rmse: float
    n_pairs: int
    mean_error: float


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def pair_greedy(
    true_positions: torch.Tensor,
    true_frames: torch.Tensor,
    detected_positions: torch.Tensor,
    detected_frames: torch.Tensor,
    max_distance: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy nearest-first pairing of true and detected points within each frame.

    Args:
        true_positions, detected_positions: float ``(n, ndim)`` and ``(m, ndim)``, lambda.
        true_frames, detected_frames: int ``(n,)`` and ``(m,)``.
        max_distance: pairs farther apart than this are never formed (lambda).

    Returns:
        ``(true_index, detected_index, distance)``: int64, int64 and float64 ``(p,)``, pairs in
        increasing distance.
    """
    t_pos, t_frm = check_points(true_positions, true_frames, None, name="true_positions")
    d_pos, d_frm = check_points(
        detected_positions, detected_frames, t_pos.shape[1], name="detected_positions"
    )
    check_positive(max_distance, "max_distance")
    empty = torch.zeros(0, dtype=torch.int64)
    if not len(t_pos) or not len(d_pos):
        return empty, empty, torch.zeros(0, dtype=torch.float64)
    # One search over all frames: the frame becomes an extra coordinate, spaced wider than
    # max_distance so that points of different frames never pair.
    spacing = 2.0 * max_distance
    t_tree = cKDTree(np.column_stack([t_pos, t_frm * spacing]))
    d_tree = cKDTree(np.column_stack([d_pos, d_frm * spacing]))
    pairs = t_tree.sparse_distance_matrix(d_tree, max_distance, output_type="ndarray")
    order = np.argsort(pairs["v"], kind="stable")
    t_used = np.zeros(len(t_pos), dtype=bool)
    d_used = np.zeros(len(d_pos), dtype=bool)
    chosen = []
    for k in order:
        i, j = pairs["i"][k], pairs["j"][k]
        if not t_used[i] and not d_used[j]:
            t_used[i] = d_used[j] = True
            chosen.append(k)
    chosen = np.array(chosen, dtype=np.int64)
    return (
        torch.from_numpy(pairs["i"][chosen].astype(np.int64)),
        torch.from_numpy(pairs["j"][chosen].astype(np.int64)),
        torch.from_numpy(pairs["v"][chosen].astype(np.float64)),
    )


def localization_scores(
    true_positions: torch.Tensor,
    true_frames: torch.Tensor,
    detected_positions: torch.Tensor,
    detected_frames: torch.Tensor,
    *,
    tp_distance: float = 0.25,
    pair_distance: float = 0.5,
) -> LocalizationScores:
    """Precision, recall, Jaccard index and RMSE of detections against the truth.

    Args:
        true_positions, detected_positions: float ``(n, ndim)`` and ``(m, ndim)``, lambda.
        true_frames, detected_frames: int ``(n,)`` and ``(m,)``.
        tp_distance: a pair closer than this is a true positive (default lambda/4).
        pair_distance: largest pairing distance, also the RMSE cut-off (default lambda/2).
    """
    check_positive(tp_distance, "tp_distance")
    if pair_distance < tp_distance:
        raise ValueError(f"pair_distance ({pair_distance}) must be >= tp_distance ({tp_distance})")
    _, _, distance = pair_greedy(
        true_positions, true_frames, detected_positions, detected_frames, pair_distance
    )
    distance = distance.numpy()
    tp = int(np.count_nonzero(distance <= tp_distance))
    fp = len(detected_frames) - tp
    fn = len(true_frames) - tp
    return LocalizationScores(
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        jaccard=_ratio(tp, tp + fp + fn),
        rmse=float(np.sqrt(np.mean(distance**2))) if len(distance) else float("nan"),
        n_pairs=len(distance),
        mean_error=float(np.mean(distance)) if len(distance) else float("nan"),
    )
