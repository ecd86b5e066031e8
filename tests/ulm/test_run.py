"""The ULM training run (``blockrecon.ulm.run``): checkpoint placement refuses bad paths before
any work; a run writes a calibrated model file and removes its checkpoint; an interrupted run
raises TrainingInterrupted naming a checkpoint that resumes to the uninterrupted result."""

import pytest
import torch
from ulm_cases import CONFIG, interrupt_training_at

from blockrecon.ulm.evaluation import DECODE_THRESHOLDS
from blockrecon.ulm.run import (
    CHECKPOINT_SUFFIX,
    TrainedModel,
    TrainingInterrupted,
    checkpoint_for,
    train_model_file,
)
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.training import build_model, load_model

STEPS = 4
BLOCK_FRAMES = 16


@pytest.fixture(scope="module")
def acquisition():
    return simulate_acquisition((8, 8), 32, 2.0, seed=1, progress=False)


def _make_model(blocks):
    return build_model("sparse", CONFIG)


def _train(out, acquisitions, checkpoint, **kwargs):
    settings = {"block_frames": BLOCK_FRAMES, "steps": STEPS, "progress": False, **kwargs}
    return train_model_file(out, acquisitions, _make_model, checkpoint=checkpoint, **settings)


# checkpoint_for


def test_default_checkpoint_sits_beside_the_model_file(tmp_path):
    out = tmp_path / "model.pt"
    path = checkpoint_for(out)
    assert path == tmp_path / f"model{CHECKPOINT_SUFFIX}" and path != out
    assert checkpoint_for(str(out)) == path  # str and PathLike alike
    assert not path.exists()  # placing it writes nothing


def test_explicit_checkpoint_is_used(tmp_path):
    (tmp_path / "ckpts").mkdir()
    chosen = tmp_path / "ckpts" / "run.pt"
    assert checkpoint_for(tmp_path / "m.pt", chosen) == chosen
    chosen.write_bytes(b"")
    assert checkpoint_for(tmp_path / "m.pt", chosen, resume=True) == chosen


def test_out_must_end_in_pt(tmp_path):
    with pytest.raises(ValueError, match=r"--out .*m\.txt must end in \.pt"):
        checkpoint_for(tmp_path / "m.txt")


def test_missing_out_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--out folder .*nowhere does not exist"):
        checkpoint_for(tmp_path / "nowhere" / "m.pt")


def test_missing_checkpoint_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--checkpoint folder .*nowhere does not exist"):
        checkpoint_for(tmp_path / "m.pt", tmp_path / "nowhere" / "c.pt")


@pytest.mark.parametrize("spelling", ["same", "relative"])
def test_checkpoint_equal_to_out_is_refused(tmp_path, monkeypatch, spelling):
    out = tmp_path / "m.pt"
    checkpoint = out
    if spelling == "relative":  # the same file by another path
        monkeypatch.chdir(tmp_path)
        checkpoint = "m.pt"
    with pytest.raises(ValueError, match=r"--checkpoint (.*/)?m\.pt is the --out model file"):
        checkpoint_for(out, checkpoint)


def test_resume_without_checkpoint_is_refused(tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(FileNotFoundError, match=r"--resume: no checkpoint .*m\.ckpt\.pt"):
        checkpoint_for(out, resume=True)
    (tmp_path / "c.pt").mkdir()  # a folder is not a checkpoint file
    with pytest.raises(FileNotFoundError, match=r"--resume: no checkpoint .*c\.pt"):
        checkpoint_for(out, tmp_path / "c.pt", resume=True)


# train_model_file


def test_run_writes_a_calibrated_model_and_removes_the_checkpoint(acquisition, tmp_path):
    out = tmp_path / "m.pt"
    checkpoint = checkpoint_for(out)
    run = _train(out, [acquisition], checkpoint, checkpoint_every=2)
    assert isinstance(run, TrainedModel)
    assert out.is_file() and not checkpoint.exists()
    assert len(run.losses) == STEPS and run.model.history == run.losses
    assert run.n_blocks == 2  # 32 frames in blocks of 16
    assert set(run.jaccard) == set(DECODE_THRESHOLDS)
    assert all(0 <= j <= 1 for j in run.jaccard.values())
    assert run.jaccard[run.model.threshold] == max(run.jaccard.values())
    loaded = load_model(out).model
    assert loaded.kind == "sparse" and loaded.threshold == run.model.threshold
    assert loaded.history == run.losses
    for name, value in run.model.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[name], value), name


def test_run_blocks_every_acquisition_and_seeds_the_model(acquisition, tmp_path):
    seen = []

    def make_model(blocks):
        seen.append((blocks.inputs.shape[0], torch.rand(1)))
        return build_model("sparse", CONFIG)

    runs = [
        train_model_file(
            tmp_path / f"{name}.pt",
            [acquisition, acquisition],
            make_model,
            block_frames=BLOCK_FRAMES,
            steps=1,
            checkpoint=tmp_path / f"{name}.ckpt.pt",
            seed=5,
            progress=False,
        )
        for name in ("a", "b")
    ]
    assert [run.n_blocks for run in runs] == [4, 4] and [n for n, _ in seen] == [4, 4]
    assert torch.equal(seen[0][1], seen[1][1])  # make_model runs right after seeding torch
    assert runs[0].losses == runs[1].losses


def test_calibration_on_the_first_frames_scores_only_those(acquisition, tmp_path, monkeypatch):
    import blockrecon.ulm.run as run_module

    calibrated = []
    real = run_module.calibrate_threshold

    def spy(model, acquisitions, block_frames, **kwargs):
        calibrated.extend(a.n_frames for a in acquisitions)
        return real(model, acquisitions, block_frames, **kwargs)

    monkeypatch.setattr(run_module, "calibrate_threshold", spy)
    run = _train(tmp_path / "m.pt", [acquisition], tmp_path / "c.pt", calibration_frames=16)
    assert calibrated == [16] and run.n_blocks == 2  # trained on both blocks
    with pytest.raises(ValueError, match="calibration_frames .* at least one block of 16"):
        _train(tmp_path / "n.pt", [acquisition], tmp_path / "d.pt", calibration_frames=8)
    assert not (tmp_path / "n.pt").exists()


def test_bad_training_argument_writes_nothing(acquisition, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(ValueError, match="lr"):
        _train(out, [acquisition], checkpoint_for(out), lr=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_leaves_a_checkpoint_that_resumes(acquisition, tmp_path, monkeypatch):
    whole = _train(tmp_path / "whole.pt", [acquisition], tmp_path / "whole.ckpt.pt")

    out = tmp_path / "m.pt"
    checkpoint = checkpoint_for(out)
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 3)
        with pytest.raises(TrainingInterrupted) as stop:
            _train(out, [acquisition], checkpoint, checkpoint_every=2)
    assert isinstance(stop.value, KeyboardInterrupt)  # Ctrl-C handling still applies
    assert stop.value.checkpoint == checkpoint and checkpoint.is_file()
    assert not out.exists()

    resumed = _train(out, [acquisition], checkpoint_for(out, resume=True), resume=True)
    assert out.is_file() and not checkpoint.exists()
    assert resumed.losses == whole.losses and resumed.jaccard == whole.jaccard
    assert resumed.model.threshold == whole.model.threshold
    for name, value in whole.model.net.state_dict().items():
        assert torch.equal(resumed.model.net.state_dict()[name], value), name


def test_interruption_before_the_first_checkpoint_names_none(acquisition, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    checkpoint = checkpoint_for(out)
    interrupt_training_at(monkeypatch, 1)
    with pytest.raises(TrainingInterrupted) as stop:
        _train(out, [acquisition], checkpoint, checkpoint_every=2)
    assert stop.value.checkpoint is None
    assert list(tmp_path.iterdir()) == []
