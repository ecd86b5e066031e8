"""A tiny CPU training run of a block-wise UnrolledNet lowers the validation loss."""

from __future__ import annotations

import pytest
import torch

from blockrecon.dc import GradientStepDC
from blockrecon.nn import ResNet3d
from blockrecon.physics import max_eigenvalue
from blockrecon.train.simulated import SimulatedRadialPairs
from blockrecon.train.step import accumulate_gradients, evaluate
from blockrecon.unrolled import UnrolledNet


def test_training_lowers_validation_loss():
    train = SimulatedRadialPairs(3, image_size=12, n_spokes=60, seed=0)
    val = SimulatedRadialPairs(2, image_size=12, n_spokes=60, seed=100)
    torch.manual_seed(0)
    step = 1 / max_eigenvalue(train[0].op)
    model = UnrolledNet(
        ResNet3d(width=8, n_layers=3), GradientStepDC(step=step), 3, patch_size=6, init="adjoint"
    )
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    before = evaluate(model, val)
    for _ in range(5):
        for pair in train:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            accumulate_gradients(model, [pair])
            optimizer.step()
    after = evaluate(model, val)
    assert after < 0.85 * before, (before, after)


def test_dataset_items_are_consistent_and_validated():
    pairs = SimulatedRadialPairs(2, image_size=8, n_spokes=20, n_coils=2, snr_db=None)
    pair = pairs[1]
    assert pair.kspace.shape == pair.op.kspace_shape == (2, 20, 16)
    assert pair.target.shape == (8, 8, 8) and pair.target.is_complex()
    assert pairs[1] is pair  # cached
    # noise-free data on a 2x simulation grid: E x_true is close to the measured k-space
    residual = (pair.op(pair.target) - pair.kspace).norm() / pair.kspace.norm()
    assert residual < 0.2
    with pytest.raises(IndexError):
        pairs[2]
    with pytest.raises(ValueError, match="n_spokes"):
        SimulatedRadialPairs(2, n_spokes=0)
