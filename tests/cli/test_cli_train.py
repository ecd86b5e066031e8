"""``blockrecon train``: runs, resumes after SIGKILL, refuses mismatches, runs under torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from blockrecon.cli import main
from blockrecon.io import write_acquisition
from blockrecon.physics import radial_3d, simulate_acquisition
from blockrecon.train import FitResult
from blockrecon.train.checkpoint import load_checkpoint
from blockrecon.train.distributed import is_main_process

TINY = [
    "--simulate",
    "2",
    "--size",
    "16",
    "--spokes",
    "30",
    "--coils",
    "2",
    "--width",
    "4",
    "--layers",
    "2",
    "--unrolls",
    "2",
    "--patch",
    "8",
    "--seed",
    "4",
    "--no-progress",
]


def _metrics(run):
    path = run / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "blockrecon", "train", *TINY, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_sigkill_loses_at_most_the_epoch_under_way_and_resume_matches(tmp_path):
    run = tmp_path / "killed"
    process = subprocess.Popen(
        _command("--out", str(run), "--epochs", "500"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_metrics(run)) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "training ended before it was killed"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    saved = load_checkpoint(run / "checkpoint.pt")  # complete, never half-written
    epochs = saved["epoch"]
    assert epochs >= 2 and _metrics(run) == saved["history"]

    # same thread count for every run, so that floating-point sums agree bit for bit
    for args in (["--out", str(run), "--resume"], ["--out", str(tmp_path / "straight")]):
        subprocess.run(
            _command(*args, "--epochs", str(epochs + 1)),
            env=_env(),
            check=True,
            capture_output=True,
            timeout=300,
        )
    resumed, straight = _metrics(run), _metrics(tmp_path / "straight")
    assert len(resumed) == epochs + 1
    assert [m["train_loss"] for m in resumed] == [m["train_loss"] for m in straight]


def test_resume_with_other_architecture_exits_2(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run), "--epochs", "1"]) == 0
    capsys.readouterr()
    assert (
        main(["train", *TINY, "--out", str(run), "--epochs", "2", "--resume", "--width", "8"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "architecture differs" in err
    assert main(["train", *TINY, "--out", str(run), "--epochs", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert len(_metrics(run)) == 1


@pytest.mark.parametrize("rank, main_process", [("0", True), ("1", False)])
def test_main_process_is_rank_0_of_the_environment(monkeypatch, rank, main_process):
    monkeypatch.setenv("RANK", rank)
    assert is_main_process() is main_process


@pytest.mark.parametrize("rank", ["0", "1"])
@pytest.mark.parametrize(
    "result, code, message",
    [
        (FitResult(history=[{}]), 0, "Trained 1 epochs"),
        (FitResult(stopped_by=signal.SIGTERM), 128 + signal.SIGTERM, "Stopped by SIGTERM"),
    ],
)
def test_final_message_is_printed_by_rank_0_only(
    tmp_path, capsys, monkeypatch, rank, result, code, message
):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr("blockrecon.cli.train.fit", lambda *args, **kwargs: result)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == code
    assert (message in capsys.readouterr().err) is (rank == "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_under_torchrun_with_two_processes(tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "blockrecon",
        "train",
        *TINY,
        "--out",
        str(run),
        "--epochs",
        "2",
        "--val",
        "1",
    ]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    history = _metrics(run)
    assert [m["epoch"] for m in history] == [1, 2]  # written once, by rank 0
    assert all(m["batches"] == 1 for m in history)  # 2 acquisitions over 2 processes
    assert "val_loss" in history[-1]
    assert done.stderr.count("Trained 2 epochs") == 1  # printed by rank 0 only
    assert load_checkpoint(run / "checkpoint.pt")["settings"]["world_size"] == 2


def test_map_estimation_options_reach_files_without_maps(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    acq = simulate_acquisition(radial_3d(120, 16), (16, 16, 16), n_coils=2, snr_db=40)
    write_acquisition(data / "scan.h5", replace(acq, maps=None))
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(run),
            "--epochs",
            "1",
            "--width",
            "4",
            "--layers",
            "2",
            "--unrolls",
            "1",
            "--patch",
            "8",
            "--no-progress",
            "--maps-method",
            "jsense",
            "--calib-width",
            "20",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "calib_width" in err[0] and "16" in err[0], err
    assert not run.exists()
