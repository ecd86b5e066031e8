"""Simulated training pairs of the angiography phantom."""

from __future__ import annotations

import pytest
import torch

from blockrecon.physics import angio_phantom
from blockrecon.train.simulated import SimulatedRadialPairs


def test_angio_pairs_hold_the_phantom_of_each_item_seed():
    pairs = SimulatedRadialPairs(2, image_size=8, n_spokes=20, n_coils=2, seed=5, phantom="angio")
    for index in range(2):
        assert torch.equal(pairs[index].target, angio_phantom((8, 8, 8), seed=5 + index))
    # noise-free the model explains the data: E x_true is close to the k-space
    clean = SimulatedRadialPairs(
        1, image_size=8, n_spokes=20, n_coils=2, snr_db=None, phantom="angio"
    )
    pair = clean[0]
    assert (pair.op(pair.target) - pair.kspace).norm() / pair.kspace.norm() < 0.2


def test_unknown_phantom_is_refused():
    with pytest.raises(ValueError, match="phantom must be one of"):
        SimulatedRadialPairs(1, phantom="shepp_logan")
