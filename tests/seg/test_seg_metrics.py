"""Dice and HD95 on hand-built label maps with known answers."""

import math

import pytest
import torch

from blockrecon.seg.metrics import dice_per_class, evaluate_labels, hausdorff95


def test_dice_known_values():
    target = torch.zeros(10, 10, dtype=torch.int64)
    pred = torch.zeros_like(target)
    target[0:4, 0:5] = 1  # 20 pixels of class 1
    pred[0:4, 0:3] = 1  # 12 pixels, all inside: Dice = 24 / 32
    target[6:8, 6:8] = 2  # class 2 missed entirely
    pred[9, 9] = 3  # class 3 predicted where there is none
    torch.testing.assert_close(
        dice_per_class(pred, target, 5), torch.tensor([0.75, 0.0, 0.0, 1.0], dtype=torch.float64)
    )


def test_dice_rejects_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        dice_per_class(
            torch.zeros(3, 3, dtype=torch.int64), torch.zeros(3, 4, dtype=torch.int64), 2
        )
    with pytest.raises(ValueError, match="integer"):
        dice_per_class(torch.zeros(3, 3), torch.zeros(3, 3), 2)


def _mask(shape, *points):
    m = torch.zeros(shape, dtype=torch.bool)
    for p in points:
        m[p] = True
    return m


def test_hd95_single_pixels_and_spacing():
    a, b = _mask((12, 12), (5, 5)), _mask((12, 12), (5, 9))
    assert hausdorff95(a, b) == pytest.approx(4.0)
    c = _mask((12, 12), (8, 5))
    assert hausdorff95(a, c, spacing=(2.0, 1.0)) == pytest.approx(6.0)
    assert hausdorff95(a, a) == 0.0


def test_hd95_ignores_a_rare_outlier_that_hausdorff_would_not():
    a = torch.zeros(64, 64, dtype=torch.bool)
    a[10:30, 10:30] = True
    b = a.clone()
    b[60, 60] = True  # one stray pixel about 43 px away
    assert hausdorff95(a, b) == 0.0


def test_hd95_concentric_disks_is_radius_difference():
    yy, xx = torch.meshgrid(torch.arange(80), torch.arange(80), indexing="ij")
    r = ((yy - 40.0) ** 2 + (xx - 40.0) ** 2).sqrt()
    assert hausdorff95(r <= 20, r <= 26) == pytest.approx(6.0, abs=0.6)


def test_hd95_empty_masks():
    empty, one = _mask((5, 5)), _mask((5, 5), (2, 2))
    assert hausdorff95(empty, empty) == 0.0
    assert math.isinf(hausdorff95(empty, one))


def test_evaluate_labels_averages_per_image():
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    target[:, 2:6, 2:6] = 1
    pred = target.clone()
    pred[1] = 0
    pred[1, 2:6, 2:4] = 1  # half the square: Dice 2*8/(8+16)
    scores = evaluate_labels(pred, target, 2)
    assert scores["dice"] == pytest.approx([(1 + 16 / 24) / 2])
    assert scores["hd95"][0] > 0
