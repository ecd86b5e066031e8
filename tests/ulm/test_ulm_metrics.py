"""PALA-style greedy pairing and scores on hand-built cases with known answers."""

import math

import pytest
import torch

from blockrecon.ulm import localization_scores, pair_greedy


def _pts(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_greedy_pairs_nearest_first_not_globally_optimal():
    # t0 - d0 is the closest pair (0.10) and is taken first; t1 then has only d1 (0.60), beyond 0.5.
    # A globally optimal assignment would pair t0-d1 (0.35) and t1-d0 (0.15) instead.
    truth = _pts([[0.0, 0.0], [0.0, 0.25]])
    found = _pts([[0.0, 0.10], [0.0, -0.35]])
    frames = torch.zeros(2, dtype=torch.int64)
    ti, di, dist = pair_greedy(truth, frames, found, frames, 0.5)
    assert ti.tolist() == [0] and di.tolist() == [0]
    assert dist.tolist() == pytest.approx([0.10])
    ti, di, dist = pair_greedy(truth, frames, found, frames, 0.7)
    assert list(zip(ti.tolist(), di.tolist(), strict=True)) == [(0, 0), (1, 1)]
    assert dist.tolist() == pytest.approx([0.10, 0.60])


def test_scores_known_answer_over_frames():
    truth = _pts(
        [
            [1.0, 1.0],
            [2.0, 2.0],
            [5.0, 5.0],  # frame 0
            [1.0, 1.0],
            [3.0, 3.0],
        ]
    )  # frame 1
    t_frames = torch.tensor([0, 0, 0, 1, 1])
    found = _pts(
        [
            [1.1, 1.0],  # frame 0: TP (0.1)
            [2.0, 2.4],  # frame 0: paired (0.4) but not TP
            [8.0, 8.0],  # frame 0: unpaired
            [1.0, 1.2],  # frame 1: TP (0.2)
            [5.0, 5.0],
        ]
    )  # frame 1: nothing there in frame 1
    d_frames = torch.tensor([0, 0, 0, 1, 1])
    s = localization_scores(truth, t_frames, found, d_frames)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 3, 3)
    assert s.precision == pytest.approx(2 / 5) and s.recall == pytest.approx(2 / 5)
    assert s.jaccard == pytest.approx(2 / 8)
    assert s.n_pairs == 3
    assert s.rmse == pytest.approx(math.sqrt((0.1**2 + 0.4**2 + 0.2**2) / 3), rel=1e-5)


def test_perfect_3d_detection_and_empty_cases():
    truth = _pts([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    frames = torch.tensor([0, 3])
    s = localization_scores(truth, frames, truth + 0.01, frames)
    assert (s.precision, s.recall, s.jaccard) == (1.0, 1.0, 1.0)
    assert s.rmse == pytest.approx(0.01 * math.sqrt(3), rel=1e-3)
    none = localization_scores(truth, frames, torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
    assert (none.recall, none.jaccard, none.false_negatives) == (0.0, 0.0, 2)
    assert math.isnan(none.precision) and math.isnan(none.rmse)


def test_bad_metric_inputs_are_named():
    truth, frames = _pts([[0.0, 0.0]]), torch.tensor([0])
    with pytest.raises(ValueError, match="detected_positions must have shape"):
        localization_scores(truth, frames, torch.zeros(1, 3), frames)
    with pytest.raises(ValueError, match="true_positions must be real and finite"):
        localization_scores(_pts([[float("inf"), 0.0]]), frames, truth, frames)
    with pytest.raises(ValueError, match="pair_distance"):
        localization_scores(truth, frames, truth, frames, tp_distance=0.5, pair_distance=0.25)
