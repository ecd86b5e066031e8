"""fit(): checkpoints, exact resume after a signal, refusal of mismatched runs."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from blockrecon.losses import relative_l2
from blockrecon.models import load_model
from blockrecon.train import SimulatedRadialPairs, Supervised, fit
from blockrecon.train.checkpoint import load_checkpoint

CONFIG = {"regularizer": {"width": 4, "n_layers": 2}, "n_unrolls": 2, "patch_size": 8}


@pytest.fixture(scope="module")
def data():
    settings = dict(image_size=16, n_spokes=40, n_coils=2, normalize=True)
    return (
        SimulatedRadialPairs(3, seed=0, **settings),
        SimulatedRadialPairs(1, seed=50, **settings),
    )


def _losses(history):
    return [(h["train_loss"], h["val_loss"]) for h in history]


def test_resume_after_sigterm_mid_epoch_reproduces_uninterrupted_run(data, tmp_path):
    train, val = data
    reference = fit(
        CONFIG, train, tmp_path / "full", val_data=val, epochs=3, seed=1, progress=False
    )
    assert reference.stopped_by is None and len(reference.history) == 3

    calls = {"n": 0}

    def interrupting_loss(estimate, target):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 1: 3 batches + 1 validation pair; then 2nd batch
            os.kill(os.getpid(), signal.SIGTERM)
        return relative_l2(estimate, target)

    run = tmp_path / "run"
    stopped = fit(
        CONFIG,
        train,
        run,
        val_data=val,
        epochs=3,
        seed=1,
        progress=False,
        objective=Supervised(interrupting_loss),
    )
    assert stopped.stopped_by == signal.SIGTERM
    state = load_checkpoint(run / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (1, 2)  # saved after the batch under way
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored

    resumed = fit(CONFIG, train, run, val_data=val, epochs=3, seed=1, progress=False, resume=True)
    assert _losses(resumed.history) == _losses(reference.history)  # bit for bit
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert _losses(lines) == _losses(reference.history)
    model, config, _ = load_model(run / "model.pt")
    full = load_model(tmp_path / "full" / "model.pt").model
    for a, b in zip(model.state_dict().values(), full.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_existing_run_and_mismatched_resume_are_refused(data, tmp_path):
    train, _ = data
    fit(CONFIG, train, tmp_path, epochs=1, progress=False)
    with pytest.raises(ValueError, match="already holds a training run"):
        fit(CONFIG, train, tmp_path, epochs=2, progress=False)
    wider = {**CONFIG, "regularizer": {"width": 8, "n_layers": 2}}
    with pytest.raises(ValueError, match="architecture differs: regularizer="):
        fit(wider, train, tmp_path, epochs=2, resume=True, progress=False)
    with pytest.raises(ValueError, match="settings differ.*lr="):
        fit(CONFIG, train, tmp_path, epochs=2, lr=0.1, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        fit(CONFIG, train, tmp_path / "empty", epochs=2, resume=True, progress=False)
