"""Evaluation: the calibrated decoding threshold is the best of its grid and is saved."""

import pytest
import torch
from ulm_cases import CONFIG

from blockrecon.ulm.evaluation import calibrate_threshold, evaluate_model
from blockrecon.ulm.training import build_model, load_model, save_model, train_ulm


def test_calibrated_threshold_is_the_best_of_the_grid_and_is_saved(blocks, acquisition, tmp_path):
    torch.manual_seed(0)
    model = build_model("dense", CONFIG)
    train_ulm(model, blocks, steps=10, lr=2e-2, batch_size=2, progress=False)
    jaccard = calibrate_threshold(
        model, [acquisition], 16, thresholds=(0.1, 0.5, 0.9), progress=False
    )
    chosen = model.threshold
    for threshold, value in jaccard.items():  # each figure is that threshold's evaluation
        model.threshold = threshold
        scores, _ = evaluate_model(model, acquisition, 16, progress=False)
        assert scores.jaccard == pytest.approx(value)
    model.threshold = chosen
    assert jaccard[chosen] == max(jaccard.values())
    assert load_model(save_model(tmp_path / "m.pt", model)).model.threshold == model.threshold
    with pytest.raises(ValueError, match="thresholds"):
        calibrate_threshold(model, [acquisition], 16, thresholds=(1.5,), progress=False)
