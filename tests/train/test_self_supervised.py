"""Self-supervised training (SSDU): k-space splits, the k-space objective, training through fit."""

from __future__ import annotations

import pytest
import torch

from blockrecon.losses import normalized_l1_l2
from blockrecon.physics import Sense, max_eigenvalue
from blockrecon.train import (
    KspaceSplits,
    SelfSupervised,
    SimulatedRadialPairs,
    Supervised,
    TrainingPair,
    fit,
    normalize_pair,
    split_pair,
)
from blockrecon.train.kspace_split import split_readouts

CONFIG = {"regularizer": {"width": 4, "n_layers": 2}, "n_unrolls": 2, "patch_size": 8}


@pytest.fixture(scope="module")
def exact_pair() -> tuple[TrainingPair, torch.Tensor]:
    """A normalized pair whose k-space is exactly ``E x`` (no noise, same operator)."""
    pair = SimulatedRadialPairs(1, image_size=12, n_spokes=30, n_coils=3, normalize=True)[0]
    kspace = pair.op(pair.target)
    return normalize_pair(kspace, pair.op.maps, pair.op.nufft.coord, pair.target), pair.target


def test_split_readouts_partitions_the_readouts_reproducibly():
    keep, held = split_readouts(50, 0.4, torch.Generator().manual_seed(3))
    assert len(held) == 20 and len(keep) == 30
    assert torch.equal(torch.cat([keep, held]).sort().values, torch.arange(50))
    assert torch.equal(keep, keep.sort().values) and torch.equal(held, held.sort().values)
    again = split_readouts(50, 0.4, torch.Generator().manual_seed(3))
    other = split_readouts(50, 0.4, torch.Generator().manual_seed(4))
    assert torch.equal(again[1], held) and not torch.equal(other[1], held)


@pytest.mark.parametrize(
    ("n", "fraction", "message"),
    [
        (10, 0.0, r"must lie in \(0, 1\)"),
        (10, 1.0, r"must lie in \(0, 1\)"),
        (10, float("nan"), r"must lie in \(0, 1\)"),
        (10, 0.01, "leaves an empty"),
        (10, 0.99, "leaves an empty"),
        (1, 0.5, "leaves an empty"),
    ],
)
def test_split_refuses_fractions_that_leave_a_set_empty(n, fraction, message):
    with pytest.raises(ValueError, match=message):
        split_readouts(n, fraction, torch.Generator())


def test_split_pair_keeps_the_samples_and_the_image_scale(exact_pair):
    pair, image = exact_pair
    split = split_pair(pair, 0.4, torch.Generator().manual_seed(0))
    n_spokes = pair.kspace.shape[1]
    assert split.kspace.shape[1] + split.heldout.kspace.shape[1] == n_spokes
    # The data-consistency operator is renormalized to unit norm...
    assert max_eigenvalue(split.op, n_iter=30) == pytest.approx(1.0, rel=0.03)
    # ...with its k-space scaled alike, so the true image stays consistent with both sets.
    for kspace, op in ((split.kspace, split.op), (split.heldout.kspace, split.heldout.op)):
        residual = (op(image * pair.intensity_scale) - kspace).norm() / kspace.norm()
        assert residual < 1e-4
    # The held-out samples are the pair's own samples, untouched.
    held_rows = [
        int(torch.nonzero((pair.op.nufft.coord == row).all(-1).all(-1))[0])
        for row in split.heldout.op.nufft.coord
    ]
    assert torch.equal(split.heldout.kspace, pair.kspace[:, held_rows])


def test_self_supervised_loss_is_zero_for_the_true_image_only(exact_pair):
    pair, image = exact_pair
    split = split_pair(pair, 0.4, torch.Generator().manual_seed(1))

    def oracle(kspace, op):
        return image * pair.intensity_scale

    def zero_filled(kspace, op):
        return op.adjoint(kspace)

    objective = SelfSupervised()
    assert float(objective(oracle, split)) < 1e-3
    assert float(objective(zero_filled, split)) > 0.3
    with pytest.raises(ValueError, match="held-out samples"):
        objective(oracle, pair)
    with pytest.raises(ValueError, match="reference image"):
        Supervised()(oracle, TrainingPair(pair.kspace, pair.op, None))


def test_normalized_l1_l2_is_the_sum_of_relative_norms():
    target = torch.tensor([3 + 4j, 0, 1j])
    estimate = torch.tensor([3 + 4j, 1, 0j])
    expected = (2**0.5) / (26**0.5) + 2 / 6
    assert float(normalized_l1_l2(estimate, target)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="non-zero target"):
        normalized_l1_l2(estimate, torch.zeros(3, dtype=torch.complex64))


def test_kspace_splits_are_seeded_per_item_and_split():
    data = SimulatedRadialPairs(2, image_size=8, n_spokes=20, n_coils=2, normalize=True)
    splits = KspaceSplits(data, 0.5, splits=3, seed=7)
    assert len(splits) == 6
    held = [splits[i].heldout.op.nufft.coord for i in range(6)]
    assert len({tuple(h[:, 0, 0].tolist()) for h in held[:3]}) == 3  # 3 different splits
    again = KspaceSplits(data, 0.5, splits=3, seed=7, cache=False)
    assert all(torch.equal(again[i].heldout.op.nufft.coord, held[i]) for i in range(6))
    with pytest.raises(ValueError, match="splits must be a positive integer"):
        KspaceSplits(data, 0.5, splits=0)


def test_self_supervised_training_learns_without_targets_and_resumes_exactly(tmp_path):
    settings = dict(image_size=12, n_spokes=40, n_coils=2, normalize=True)
    train = SimulatedRadialPairs(2, seed=0, **settings)
    no_targets = [TrainingPair(p.kspace, p.op, None, p.intensity_scale) for p in train]
    val = SimulatedRadialPairs(1, seed=50, **settings)
    objective = SelfSupervised(loss_fraction=0.4, splits=2)
    args = dict(val_data=val, epochs=3, seed=1, progress=False, objective=objective, lr=3e-3)
    run = fit(CONFIG, no_targets, tmp_path / "full", **args)
    losses = [h["val_loss"] for h in run.history]
    assert losses[-1] < losses[0]  # the held-out k-space loss falls
    assert run.history[-1]["batches"] == 4  # 2 items x 2 splits
    assert all("val_psnr_db" in h for h in run.history)  # val data with targets: PSNR too

    first = fit(CONFIG, no_targets, tmp_path / "part", **{**args, "epochs": 2})
    resumed = fit(CONFIG, no_targets, tmp_path / "part", **args, resume=True)

    def losses(history):
        return [(h["train_loss"], h["val_loss"]) for h in history]

    assert losses(first.history) == losses(run.history[:2])
    assert losses(resumed.history) == losses(run.history)  # bit for bit
    with pytest.raises(ValueError, match="training settings"):
        fit(
            CONFIG,
            no_targets,
            tmp_path / "part",
            **{**args, "objective": SelfSupervised(loss_fraction=0.3)},
            resume=True,
        )


def test_supervised_fit_on_pairs_without_targets_names_the_problem(tmp_path):
    pair = SimulatedRadialPairs(1, image_size=8, n_spokes=20, n_coils=2, normalize=True)[0]
    data = [TrainingPair(pair.kspace, pair.op, None)]
    with pytest.raises(ValueError, match="train self-supervised instead"):
        fit(CONFIG, data, tmp_path, epochs=1, progress=False)


def test_split_keeps_density_weights_of_the_kept_readouts(exact_pair):
    pair, _ = exact_pair
    weights = torch.rand(pair.op.nufft.sample_shape, generator=torch.Generator().manual_seed(0))
    op = Sense(pair.op.maps, pair.op.nufft.coord, weights=weights)
    split = split_pair(TrainingPair(pair.kspace, op, None), 0.3, torch.Generator().manual_seed(2))
    kept = [
        int(torch.nonzero((op.nufft.coord == row).all(-1).all(-1))[0])
        for row in split.op.nufft.coord
    ]
    assert torch.equal(split.op.weights, weights[kept])
    assert split.heldout.op.weights is None
