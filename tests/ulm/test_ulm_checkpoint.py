"""ULM training checkpoints: an interrupted run resumed from its checkpoint ends bitwise equal to
the uninterrupted run; a resume with other settings or from a foreign file is refused."""

import pytest
import torch
from ulm_cases import CONFIG, interrupt_training_at

from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.checkpoint import load_training_state
from blockrecon.ulm.learned_mask import InputSparsifier, LearnedMask
from blockrecon.ulm.nets import UlmNetConfig
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.training import build_model, save_model, train_ulm

STEPS = 6


@pytest.fixture(scope="module")
def blocks():
    return acquisition_blocks(simulate_acquisition((8, 8), 64, 3.0, seed=3, progress=False), 16)


def _model(seed: int):
    torch.manual_seed(seed)
    return build_model("sparse", CONFIG, InputSparsifier("learned", mask=LearnedMask(2)))


def test_resumed_run_equals_the_uninterrupted_one(blocks, tmp_path, monkeypatch):
    whole = _model(0)
    expected = train_ulm(whole, blocks, STEPS, progress=False)

    path = tmp_path / "run.ckpt.pt"
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            train_ulm(_model(0), blocks, STEPS, progress=False, checkpoint=path, checkpoint_every=2)
    assert len(load_training_state(path).losses) == 4  # the checkpoint after step 4
    resumed = _model(1)  # other initial weights and mask: all restored from the checkpoint
    losses = train_ulm(
        resumed, blocks, STEPS, progress=False, checkpoint=path, checkpoint_every=2, resume=True
    )
    assert losses == expected and resumed.history == whole.history
    for name, value in whole.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[name], value), name
    mask, mask_again = whole.sparsifier.mask.state_dict(), resumed.sparsifier.mask.state_dict()
    assert all(torch.equal(mask_again[k], v) for k, v in mask.items())
    assert len(load_training_state(path).losses) == STEPS  # and one after the last step


@pytest.mark.parametrize(
    "change, named",
    [
        ({"lr": 2e-2}, "lr"),
        ({"steps": STEPS + 1}, "steps"),
        ({"batch_size": 2}, "batch_size"),
    ],
)
def test_resume_with_other_settings_is_refused(blocks, tmp_path, change, named):
    path = tmp_path / "run.ckpt.pt"
    train_ulm(_model(0), blocks, STEPS, progress=False, checkpoint=path, checkpoint_every=3)
    settings = {"steps": STEPS, "lr": 1e-2, "batch_size": 4, **change}
    with pytest.raises(ValueError, match=f"cannot resume .*{named}="):
        train_ulm(_model(0), blocks, progress=False, checkpoint=path, resume=True, **settings)


def test_resume_on_other_blocks_or_network_is_refused(blocks, tmp_path):
    path = tmp_path / "run.ckpt.pt"
    train_ulm(_model(0), blocks, 2, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="blocks_magnitude_sum"):
        fewer = acquisition_blocks(
            simulate_acquisition((8, 8), 64, 3.0, seed=4, progress=False), 16
        )
        train_ulm(_model(0), fewer, 2, progress=False, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="config"):
        wider = build_model(
            "sparse",
            UlmNetConfig(channels=(4, 4, 8), fine_channels=4),
            InputSparsifier("learned", mask=LearnedMask(2)),
        )
        train_ulm(wider, blocks, 2, progress=False, checkpoint=path, resume=True)


def test_foreign_or_missing_checkpoint_is_refused(blocks, tmp_path):
    with pytest.raises(ValueError, match="needs the checkpoint"):
        train_ulm(_model(0), blocks, 2, progress=False, resume=True)
    with pytest.raises(FileNotFoundError):
        train_ulm(_model(0), blocks, 2, progress=False, checkpoint=tmp_path / "no.pt", resume=True)
    model_file = save_model(tmp_path / "model.pt", _model(0))
    with pytest.raises(ValueError, match="not a ULM training checkpoint"):
        load_training_state(model_file)
