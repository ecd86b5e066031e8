"""Input sparsifiers: the default keeps the bubbles, the learned mask trains, each kind selects
its sites."""

import pytest
import torch
from ulm_cases import CONFIG

from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.learned_mask import InputSparsifier, LearnedMask, train_learned_mask
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.sparsify import bubble_retention
from blockrecon.ulm.training import build_model


def test_default_sparsifier_keeps_the_bubbles_at_high_concentration():
    acq = simulate_acquisition((16, 16), 32, 32.0, seed=5, progress=False)
    sites = build_model("sparse", CONFIG).sparsifier(acquisition_blocks(acq, 16).inputs)
    keep = sites.to_dense().abs().sum(1).reshape(acq.iq.shape) > 0
    kept = bubble_retention(keep, acq.positions, acq.frames, acq.pixel_size)
    assert kept.bubbles_kept >= 0.9 and kept.voxels_kept < 0.6, kept


def test_learned_mask_training_reduces_its_loss(blocks):
    torch.manual_seed(0)
    mask = LearnedMask(2)
    losses = train_learned_mask(mask, blocks, steps=30, lr=2e-2, progress=False)
    assert sum(losses[-5:]) < sum(losses[:5])


def test_sparsifiers_select_expected_sites():
    x = torch.zeros(1, 2, 16, 4, 4)
    x[0, 0, 3, 1, 2] = 1.0
    x[0, 1, 5, 2, 2] = 0.4
    assert InputSparsifier("threshold", 0.25)(x).num_sites == 1
    assert InputSparsifier("topk", 2 / (16 * 16))(x).num_sites == 2
    mask = LearnedMask(2)
    with torch.no_grad():
        mask.head.conv.bias.fill_(10.0)
    assert InputSparsifier("learned", mask=mask)(x).num_sites == 16 * 16
    assert mask(x).shape == (1, 16, 4, 4)
    with pytest.raises(ValueError, match="sparsifier"):
        InputSparsifier("random")
