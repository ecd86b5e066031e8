"""``blockrecon ulm`` end to end on tiny data, an interrupted training resumed, and bad input
exiting 2 with one line."""

import json

import pytest
import torch

import blockrecon.ulm.training as training
from blockrecon.cli import main
from blockrecon.io.ulm import read_ulm_acquisition
from blockrecon.ulm.evaluation import calibrate_smoothing, calibrate_threshold
from blockrecon.ulm.training import load_model, save_model


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory):
    path = tmp_path_factory.mktemp("ulm") / "acq.h5"
    assert (
        main(
            [
                "ulm",
                "--no-progress",
                "simulate",
                "--out",
                str(path),
                "--shape",
                "8",
                "8",
                "--frames",
                "32",
                "--concentration",
                "2",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    return path


def test_simulate_train_evaluate(acquisition, tmp_path):
    model = tmp_path / "m.pt"
    assert (
        main(
            [
                "ulm",
                "--no-progress",
                "train",
                "--data",
                str(acquisition),
                "--out",
                str(model),
                "--kind",
                "sparse",
                "--steps",
                "2",
                "--channels",
                "2",
                "2",
                "2",
                "--fine-channels",
                "2",
            ]
        )
        == 0
    )
    trained = load_model(model)
    save_model(model, trained.model, {"seed": 7, "note": "kept by calibrate"})
    assert (
        main(
            ["ulm", "--no-progress", "calibrate", "--model", str(model), "--data", str(acquisition)]
        )
        == 0
    )
    calibrated = load_model(model)
    assert calibrated.extra["seed"] == 7 and calibrated.extra["note"] == "kept by calibrate"
    assert calibrated.extra["history"] == trained.extra["history"]
    assert calibrated.model.smoothing is None
    calibrate = ["ulm", "--no-progress", "calibrate", "--model", str(model)]
    assert main([*calibrate, "--data", str(acquisition), "--smoothing"]) == 0
    smoothed = load_model(model).model  # what the library chooses for the calibrated model
    jaccard = calibrate_smoothing(
        calibrated.model, [read_ulm_acquisition(acquisition)], 16, progress=False
    )
    assert smoothed.smoothing == calibrated.model.smoothing
    assert jaccard[smoothed.smoothing] == max(jaccard.values())
    scores = tmp_path / "s.json"
    assert (
        main(
            [
                "ulm",
                "--no-progress",
                "evaluate",
                "--data",
                str(acquisition),
                "--model",
                str(model),
                "--json",
                str(scores),
            ]
        )
        == 0
    )
    result = json.loads(scores.read_text())
    tp, fp, fn = (result[k] for k in ("true_positives", "false_positives", "false_negatives"))
    assert tp + fn > 0
    assert result["jaccard"] == pytest.approx(tp / (tp + fp + fn))


def test_interrupted_training_resumes_to_the_same_model(acquisition, tmp_path, monkeypatch, capsys):
    train = [
        "ulm",
        "--no-progress",
        "train",
        "--data",
        str(acquisition),
        "--kind",
        "sparse",
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--channels",
        "2",
        "2",
        "2",
        "--fine-channels",
        "2",
    ]
    assert main([*train, "--out", str(tmp_path / "whole.pt")]) == 0
    assert not (tmp_path / "whole.ckpt.pt").exists()  # removed once the model is written

    out = tmp_path / "m.pt"
    loss, calls = training.training_loss, []

    def interrupted(*args, **kwargs):
        calls.append(None)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return loss(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(training, "training_loss", interrupted)
        assert main([*train, "--out", str(out)]) == 130
    assert "--resume" in capsys.readouterr().err and not out.exists()
    assert (tmp_path / "m.ckpt.pt").is_file()
    assert main([*train, "--out", str(out), "--lr", "0.02", "--resume"]) == 2
    assert "lr=0.01 (requested 0.02)" in capsys.readouterr().err
    assert main([*train, "--out", str(out), "--resume"]) == 0
    whole, resumed = (
        torch.load(tmp_path / name, weights_only=True) for name in ("whole.pt", "m.pt")
    )
    resumed, whole = resumed["extra"] | resumed, whole["extra"] | whole
    assert resumed["history"] == whole["history"] and len(whole["history"]) == 4
    assert all(torch.equal(resumed["state_dict"][k], v) for k, v in whole["state_dict"].items())
    assert resumed["threshold"] == whole["threshold"]


def test_train_from_a_trained_model(acquisition, tmp_path):
    base = [
        "ulm",
        "--no-progress",
        "train",
        "--data",
        str(acquisition),
        "--kind",
        "sparse",
        "--channels",
        "2",
        "2",
        "2",
        "--fine-channels",
        "2",
    ]
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    assert main([*base, "--steps", "2", "--out", str(first)]) == 0
    assert (
        main([*base, "--steps", "3", "--lr", "1e-3", "--init", str(first), "--out", str(second)])
        == 0
    )
    before, after = (torch.load(p, weights_only=True) for p in (first, second))
    before, after = before["extra"] | before, after["extra"] | after
    assert after["history"][:2] == before["history"] and len(after["history"]) == 5
    assert any(not torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    assert (
        main(
            [
                *base,
                "--kind",
                "dense",
                "--steps",
                "1",
                "--init",
                str(first),
                "--out",
                str(tmp_path / "d.pt"),
            ]
        )
        == 2
    )


def test_bench_memory(tmp_path):
    out = tmp_path / "mem.json"
    assert (
        main(
            [
                "ulm",
                "--no-progress",
                "bench-memory",
                "--shape",
                "8",
                "8",
                "--frames",
                "16",
                "--concentration",
                "2",
                "--dense-real",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["rows"]
    assert rows["dense"]["peak_bytes"] == rows["dense (meta count)"]["peak_bytes"]
    assert rows["sparse"]["peak_bytes"] < rows["dense"]["peak_bytes"]


def test_svd_filter_removes_simulated_clutter(tmp_path):
    """Tissue clutter 10 dB above a bubble's peak hides every bubble from conventional ULM;
    ``--svd-components 2`` removes it (the simulated clutter has rank 2)."""
    data = tmp_path / "clutter.h5"
    simulate = ["ulm", "--no-progress", "simulate", "--out", str(data), "--shape", "16", "16"]
    settings = ["--frames", "64", "--concentration", "4", "--clutter", "10", "--seed", "3"]
    assert main([*simulate, *settings]) == 0
    jaccard = {}
    for components in ("0", "2"):
        out = tmp_path / f"scores{components}.json"
        evaluate = ["ulm", "evaluate", "--data", str(data), "--method", "conventional"]
        assert main([*evaluate, "--svd-components", components, "--json", str(out)]) == 0
        jaccard[components] = json.loads(out.read_text())["jaccard"]
    assert jaccard["0"] < 0.05 and jaccard["2"] > 0.6


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "{acq}", "--out", "{tmp}/m.txt"], "must end in .pt"),
        (["train", "--data", "{tmp}/missing.h5", "--out", "{tmp}/m.pt"], "no such file"),
        (
            [
                "train",
                "--data",
                "{acq}",
                "--out",
                "{tmp}/m.pt",
                "--block-frames",
                "8",
                "--steps",
                "1",
            ],
            "multiple of 16",
        ),
        (
            [
                "train",
                "--data",
                "{acq}",
                "--out",
                "{tmp}/m.pt",
                "--sparsifier",
                "topk",
                "--steps",
                "1",
            ],
            "needs --sparsity",
        ),
        (["evaluate", "--data", "{acq}", "--model", "{acq}"], "not a ULM model file"),
        (["calibrate", "--data", "{acq}", "--model", "{tmp}/missing.pt"], "does not exist"),
        (["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--resume"], "no checkpoint"),
        (
            ["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--checkpoint", "{tmp}/no/c.pt"],
            "does not exist",
        ),
        (["simulate", "--out", "{tmp}/a.txt"], "must end in .h5"),
        (
            ["simulate", "--out", "{tmp}/a.h5", "--phantom", "canals", "--clutter", "3"],
            "--clutter is for --phantom tree",
        ),
        (
            ["evaluate", "--data", "{acq}", "--method", "conventional"]
            + ["--svd-components", "32"],
            "--svd-components 32 must be below the 32 frames of",
        ),
        (
            ["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--kind", "dense"]
            + ["--keep-margin", "1"],
            "applies to sparse networks",
        ),
        (
            ["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--keep-margin", "-1"],
            "--keep-margin must be >= 0",
        ),
        (
            ["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--checkpoint", "{tmp}/m.pt"],
            "is the --out model file",
        ),
        (
            ["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--calibration-frames", "8"],
            "calibration_frames (8) must hold at least one block of 16 frames",
        ),
    ],
)
def test_bad_input_exits_2(acquisition, tmp_path, capsys, args, message):
    args = [a.format(acq=acquisition, tmp=tmp_path) for a in args]
    assert main(["ulm", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("shape", "extra", "expected"),
    [((4, 4, 4), [], 1), ((8, 8), [], 0), ((4, 4, 4), ["--keep-margin", "0"], 0)],
)
def test_train_keep_margin_defaults_to_the_shipped_settings(
    tmp_path, monkeypatch, shape, extra, expected
):
    """3D sparse networks train with keep margin 1 (as the shipped one), 2D with 0."""
    data = tmp_path / "a.h5"
    simulate = ["ulm", "--no-progress", "simulate", "--out", str(data), "--frames", "16"]
    assert main([*simulate, "--shape", *map(str, shape)]) == 0
    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped before training")

    monkeypatch.setattr("blockrecon.ulm.run.train_model_file", record)
    train = ["ulm", "--no-progress", "train", "--data", str(data), "--out", str(tmp_path / "m.pt")]
    assert main([*train, *extra]) == 2
    assert seen["keep_margin"] == expected
    assert seen["calibration_frames"] is None  # calibrated on every frame unless asked


def test_train_calibrates_on_the_frames_asked_for(acquisition, tmp_path, monkeypatch):
    seen = []
    real = calibrate_threshold

    def spy(model, acquisitions, block_frames, **kwargs):
        seen.extend(a.n_frames for a in acquisitions)
        return real(model, acquisitions, block_frames, **kwargs)

    monkeypatch.setattr("blockrecon.ulm.run.calibrate_threshold", spy)
    args = ["train", "--data", str(acquisition), "--out", str(tmp_path / "m.pt"), "--steps", "1"]
    assert main(["ulm", "--no-progress", *args, "--calibration-frames", "16"]) == 0
    assert seen == [16] and (tmp_path / "m.pt").is_file()
