"""Training by deep supervision improves Dice on a tiny 2D toy (dense, and sparse with its fine
stages fed the target cells, and their empty neighbours with a keep margin), model files
round-trip (threshold calibration: test_evaluation.py, input sparsifiers: test_learned_mask.py)."""

import gc
import weakref

import pytest
import torch
from ulm_cases import CONFIG

from blockrecon.sparse.tensor import linear_keys
from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.decode import GatedSmoothing
from blockrecon.ulm.dice import dice_score
from blockrecon.ulm.learned_mask import InputSparsifier, LearnedMask
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.training import (
    build_model,
    load_model,
    save_model,
    train_ulm,
    training_loss,
)


def _dice(model, blocks):
    """Soft Dice per scale on the training blocks."""
    with torch.no_grad():
        out = model(blocks.inputs)
    return {s: float(dice_score(out[s], blocks.targets.keys[s])) for s in out}


def test_training_improves_multiscale_dice():
    acq = simulate_acquisition((16, 16), 16, 16.0, seed=3, progress=False)
    dense_blocks = acquisition_blocks(acq, 16)  # one block, bubbles in every frame
    torch.manual_seed(0)
    model = build_model("dense", CONFIG)
    before = _dice(model, dense_blocks)
    losses = train_ulm(model, dense_blocks, steps=30, lr=2e-2, batch_size=1, progress=False)
    after = _dice(model, dense_blocks)
    assert len(losses) == 30 and model.history == losses
    # soft Dice at least doubles at every scale (long runs: benchmarks/bench_ulm_accuracy.py)
    assert all(after[s] > 2 * before[s] for s in before), (before, after)


def test_sparse_training_feeds_every_target_cell_to_the_fine_stages(blocks, monkeypatch):
    torch.manual_seed(0)
    model = build_model("sparse", CONFIG)
    seen = []
    forward = type(model.net).forward

    def record(net, x, keep_keys=None):
        out = forward(net, x, keep_keys)
        seen.append((keep_keys, out))
        return out

    monkeypatch.setattr(type(model.net), "forward", record)
    train_ulm(model, blocks, steps=3, batch_size=4, progress=False)
    targets = present = 0
    for keep_keys, out in seen:
        at_sites = torch.isin(keep_keys[4], out[4].keys())  # target cells among the sites
        fine_parents = out[8].coords.clone()
        fine_parents[:, 2:] //= 2  # parents of the 8x sites on the 4x grid
        parents = linear_keys(fine_parents, out[4].spatial_shape)
        assert bool(torch.isin(keep_keys[4][at_sites], parents).all())  # none pruned
        targets, present = targets + at_sites.numel(), present + int(at_sites.sum())
    assert targets > 0 and present > 0.8 * targets


def test_model_file_round_trip(blocks, tmp_path):
    torch.manual_seed(0)
    mask = LearnedMask(2)
    model = build_model("sparse", CONFIG, InputSparsifier("learned", mask=mask))
    model.threshold, model.split_radius = 0.3, None
    model.smoothing = GatedSmoothing(0.1, 0.002, 0.01, 0.4, 0.005)
    path = save_model(tmp_path / "m.pt", model)
    again = load_model(path).model
    assert again.kind == "sparse" and again.sparsifier.kind == "learned"
    assert (again.threshold, again.split_radius) == (0.3, None)
    assert again.smoothing == model.smoothing
    payload = torch.load(path, weights_only=True)
    payload["extra"]["smoothing"].pop("merge_below")  # written before merging had its own gate
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").model.smoothing == GatedSmoothing(0.1, 0.002, 0.01, 0.4)
    payload["extra"]["smoothing"].pop("merge")  # written before merging existed
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").model.smoothing == GatedSmoothing(0.1, 0.002, 0.01)
    x = blocks.inputs[:1]
    torch.testing.assert_close(again(x)[8].feats, model(x)[8].feats)
    saved = path.read_bytes()
    model.history.append(lambda: None)  # cannot be pickled: the write fails half-way
    with pytest.raises(Exception, match="pickle"):
        save_model(path, model)
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "old.pt"]
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a ULM model file: .*bad.pt"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p["config"].update(bogus=1),
        lambda p: p["config"]["sparsifier"].pop("mask"),
        lambda p: p["state_dict"].pop(next(iter(p["state_dict"]))),
    ],
)
def test_damaged_model_file_is_named(tmp_path, damage):
    path = save_model(tmp_path / "m.pt", build_model("sparse", CONFIG))
    payload = torch.load(path, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged ULM model file"):
        load_model(path)


@pytest.mark.parametrize("margin", [0, 1])
def test_keep_margin_feeds_the_empty_neighbours_of_the_targets(blocks, margin):
    """With heads that pass nothing, the sites of each stage are the children of the kept
    cells: exactly the target cells grown by ``keep_margin`` (plus each item's most likely
    site), so that with a margin the fine heads also see empty cells next to every bubble."""
    torch.manual_seed(0)
    model = build_model("sparse", CONFIG)
    with torch.no_grad():
        for head in model.net.heads:
            head.conv.bias.fill_(-1e3)  # occupancy 0: only the kept keys survive pruning
    batch = blocks.targets.select([0, 1])
    _, out = training_loss(model, blocks.inputs[:2], batch, keep_margin=margin)
    grown = batch.dilated(margin, scales=(4,))[4]
    parents = out[8].coords.clone()
    parents[:, 2:] //= 2
    parent_keys = torch.unique(linear_keys(parents, out[4].spatial_shape))
    kept = parent_keys[torch.isin(parent_keys, out[4].keys())]
    reached = torch.isin(grown, out[4].keys())  # grown cells the input sites reach
    assert bool(torch.isin(grown[reached], kept).all())  # every one is kept
    extra = kept[~torch.isin(kept, grown)]
    assert extra.numel() <= 2  # besides them only the most likely site of each item
    empty = ~torch.isin(kept, batch.keys[4])
    if margin:
        assert int(empty.sum()) > int((~empty).sum())  # more empty neighbours than targets
    else:
        assert int(empty.sum()) <= 2


def test_a_training_step_frees_the_previous_steps_outputs(blocks, monkeypatch):
    """The outputs of a step (sparse tensors with their kernel maps: gigabytes on 3D blocks)
    are gone, without the cyclic garbage collector, before the next step's forward."""
    torch.manual_seed(0)
    model = build_model("sparse", CONFIG)
    forward = type(model.net).forward
    previous: list[weakref.ref] = []

    def watch(net, x, keep_keys=None):
        assert [ref() for ref in previous] == [None] * len(previous)
        out = forward(net, x, keep_keys)
        previous[:] = [weakref.ref(t) for t in out.values()]
        return out

    monkeypatch.setattr(type(model.net), "forward", watch)
    gc.collect()
    gc.disable()
    try:
        train_ulm(model, blocks, steps=3, batch_size=2, progress=False)
    finally:
        gc.enable()
    assert len(previous) > 0
