"""Training by deep supervision improves Dice on a tiny 2D toy; model files round-trip."""

import pytest
import torch

from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.dice import dice_score
from blockrecon.ulm.learned_mask import InputSparsifier, LearnedMask, train_learned_mask
from blockrecon.ulm.nets import UlmNetConfig
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.training import build_model, load_model, save_model, train_ulm

CONFIG = UlmNetConfig(channels=(4, 4, 4), fine_channels=4)


@pytest.fixture(scope="module")
def blocks():
    acq = simulate_acquisition((8, 8), 64, 3.0, seed=3, progress=False)
    return acquisition_blocks(acq, 16)


def _dice(model, blocks):
    """Soft Dice per scale on the training blocks."""
    with torch.no_grad():
        out = model(blocks.inputs)
    return {s: float(dice_score(out[s], blocks.targets.keys[s])) for s in out}


def test_training_improves_multiscale_dice(blocks):
    torch.manual_seed(0)
    model = build_model("dense", CONFIG)
    before = _dice(model, blocks)
    losses = train_ulm(model, blocks, steps=15, lr=2e-2, batch_size=2, progress=False)
    after = _dice(model, blocks)
    assert len(losses) == 15 and model.history == losses
    # soft Dice at least doubles at every scale (long runs: benchmarks/bench_ulm_accuracy.py)
    assert all(after[s] > 2 * before[s] for s in before), (before, after)


def test_learned_mask_training_reduces_its_loss(blocks):
    torch.manual_seed(0)
    mask = LearnedMask(2)
    losses = train_learned_mask(mask, blocks, steps=30, lr=2e-2, progress=False)
    assert sum(losses[-5:]) < sum(losses[:5])


def test_model_file_round_trip(blocks, tmp_path):
    torch.manual_seed(0)
    mask = LearnedMask(2)
    model = build_model("sparse", CONFIG, InputSparsifier("learned", mask=mask))
    path = save_model(model, tmp_path / "m.pt")
    again = load_model(path)
    assert again.kind == "sparse" and again.sparsifier.kind == "learned"
    x = blocks.inputs[:1]
    torch.testing.assert_close(again(x)[8].feats, model(x)[8].feats)
    saved = path.read_bytes()
    model.history.append(lambda: None)  # cannot be pickled: the write fails half-way
    with pytest.raises(Exception, match="pickle"):
        save_model(model, path)
    assert path.read_bytes() == saved and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a ULM model"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")

