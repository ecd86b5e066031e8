"""Input at fault gives exit 2 and one line naming the problem, found before any work: unwritable
outputs, sizes beyond memory, bad patches, unreadable model files; nothing is left behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import blockrecon.demo
from blockrecon.cli import main, recon, simulate, train
from blockrecon.inference import NORMALIZATION
from blockrecon.models import build_unrolled, save_model


def _must_not_run(*args, **kwargs):
    raise AssertionError("reached after the input should have been refused")


def _error(capsys, command: str) -> str:
    """The command's single error line on stderr (other lines are progress notes)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"blockrecon {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A small simulated scan (16^3, 2 coils)."""
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(path),
                "--shape",
                "16",
                "16",
                "16",
                "--coils",
                "2",
                "--spokes",
                "60",
            ]
        )
        == 0
    )
    return path


def _model(path, regularizer: dict) -> str:
    config = {"regularizer": regularizer, "n_unrolls": 1, "patch_size": 8}
    torch.manual_seed(0)
    save_model(path, build_unrolled(config), config, {"data_normalization": NORMALIZATION})
    return str(path)


def test_unwritable_out_is_found_before_any_work(read_only_folder, scan, capsys, monkeypatch):
    monkeypatch.setattr(simulate, "simulate_radial", _must_not_run)
    monkeypatch.setattr(recon, "read_scan", _must_not_run)
    monkeypatch.setattr(train, "fit", _must_not_run)
    monkeypatch.setattr(blockrecon.demo, "simulate_demo", _must_not_run)
    folder = read_only_folder
    commands = {
        "simulate": (["--out", str(folder / "scan.h5")], folder / "scan.h5"),
        "recon": (
            [str(scan), "--method", "grid", "--out", str(folder / "x.nii.gz")],
            folder / "x.nii.gz",
        ),
        "train": (["--simulate", "1", "--out", str(folder / "run")], folder / "run"),
        "demo": (["--out", str(folder / "demo")], folder / "demo"),
    }
    for command, (args, target) in commands.items():
        assert main([command, *args, "--no-progress"]) == 2, command
        error = _error(capsys, command)
        assert f"cannot write {target}: Read-only file system" in error
        assert ".partial" not in error
    assert list(folder.iterdir()) == []


def test_output_folder_that_is_a_file_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "fit", _must_not_run)
    taken = tmp_path / "taken"
    taken.write_text("")
    assert main(["train", "--simulate", "1", "--out", str(taken / "run")]) == 2
    assert f"{taken} exists and is not a folder" in _error(capsys, "train")


@pytest.mark.parametrize(
    "command, size",
    [
        (["simulate", "--shape", "2048", "2048", "2048"], "--shape 2048 2048 2048"),
        (["demo", "--size", "4096"], "--size 4096"),
    ],
)
def test_sizes_beyond_memory_are_refused_before_allocating(
    command, size, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(simulate, "simulate_radial", _must_not_run)
    monkeypatch.setattr(blockrecon.demo, "simulate_demo", _must_not_run)
    out = tmp_path / ("scan.h5" if command[0] == "simulate" else "demo")
    assert main([*command, "--out", str(out)]) == 2
    error = _error(capsys, command[0])
    assert f"simulating {size} needs about" in error and "GiB is available" in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "patch, regularizer, reason",
    [
        ("0", {"width": 2, "n_layers": 2}, "must be a positive number of voxels"),
        ("32", {"width": 2, "n_layers": 2}, "larger than the volume"),
        ("7", {"kind": "unet", "base_width": 2, "depth": 2}, "multiple of the network stride"),
    ],
)
def test_bad_patch_is_blamed_on_the_patch_option(
    patch, regularizer, reason, scan, tmp_path, capsys
):
    model = _model(tmp_path / "model.pt", regularizer)
    out = tmp_path / "out.h5"
    assert (
        main(
            [
                "recon",
                str(scan),
                "--method",
                "mbdl",
                "--model",
                model,
                "--patch",
                patch,
                "--out",
                str(out),
            ]
        )
        == 2
    )
    error = _error(capsys, "recon")
    assert error.startswith(f"blockrecon recon: error: --patch {'must' if patch == '0' else patch}")
    assert reason in error and "model file" not in error
    assert not out.exists()


def test_failed_train_leaves_no_run_folder(tmp_path, capsys):
    """A patch larger than the images fails after the run folder was made: it is removed."""
    run = tmp_path / "new" / "run"
    code = main(
        [
            "train",
            "--simulate",
            "1",
            "--size",
            "16",
            "--spokes",
            "20",
            "--coils",
            "1",
            "--width",
            "2",
            "--layers",
            "2",
            "--unrolls",
            "1",
            "--patch",
            "32",
            "--out",
            str(run),
            "--no-progress",
        ]
    )
    assert code == 2 and "larger than the volume" in _error(capsys, "train")
    assert list(tmp_path.iterdir()) == []


def test_failed_train_keeps_an_existing_run_folder(tmp_path, capsys):
    code = main(
        [
            "train",
            "--simulate",
            "1",
            "--size",
            "16",
            "--patch",
            "32",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 2 and tmp_path.is_dir()
    _error(capsys, "train")


BAD_FILES = {"empty": b"", "random": np.random.default_rng(0).bytes(300), "text": b"not a model\n"}


@pytest.mark.parametrize("content", BAD_FILES)
@pytest.mark.parametrize(
    "command, kind",
    [
        (
            ["recon", "{scan}", "--method", "mbdl", "--out", "{tmp}/out.h5", "--model"],
            "blockrecon model file",
        ),
        (["ulm", "evaluate", "--data", "{tmp}/acq.h5", "--model"], "ULM model file"),
        (
            [
                "seg",
                "predict",
                "--input",
                "{tmp}/x.nii.gz",
                "--output",
                "{tmp}/y.nii.gz",
                "--model",
            ],
            "blockrecon segmentation checkpoint",
        ),
    ],
)
def test_unreadable_model_files_get_one_line(content, command, kind, scan, tmp_path, capsys):
    bad = tmp_path / f"{content}.pt"
    bad.write_bytes(BAD_FILES[content])
    args = [a.format(scan=scan, tmp=tmp_path) for a in command]
    assert main([*args, str(bad)]) == 2
    error = _error(capsys, command[0])
    assert f"not a {kind}: {bad} (" in error
    assert "weights_only" not in error.lower().replace(" ", "_")
    if content == "empty":
        assert error.endswith("(the file is empty)")
    assert [p.name for p in tmp_path.iterdir()] == [bad.name]


def test_foreign_pickle_gets_one_line_without_torch_advice(tmp_path, capsys):
    """A torch file holding objects other than tensors and plain data (here NumPy arrays)."""
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": np.zeros(3)}, foreign)
    assert (
        main(["ulm", "evaluate", "--data", str(tmp_path / "acq.h5"), "--model", str(foreign)]) == 2
    )
    error = _error(capsys, "ulm")
    assert f"not a ULM model file: {foreign} (corrupt, or holds objects other than" in error
    assert "Weights only" not in error and "weights_only" not in error
