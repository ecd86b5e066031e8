"""``blockrecon bench memory`` and :mod:`blockrecon.step_memory` at tiny sizes."""

from __future__ import annotations

import json
import time

import pytest
import torch

from blockrecon import step_memory
from blockrecon.cli import main
from blockrecon.memory import saved_bytes
from blockrecon.step_memory import (
    ESTIMATE_PATCHES,
    StepProblem,
    build_inputs,
    build_model,
    estimate_step_bytes,
    nufft_workspace_bytes,
    training_step,
)

TINY = ["--shape", "16", "16", "16", "--coils", "2", "--unrolls", "2"]


def test_estimate_only_json_is_consistent(tmp_path, capsys):
    out, png = tmp_path / "mem.json", tmp_path / "mem.png"
    code = main(
        [
            "bench",
            "memory",
            *TINY,
            "--patch",
            "12",
            "8",
            "--estimate-only",
            "--json",
            str(out),
            "--plot",
            str(png),
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    estimates = [row["estimate_bytes"] for row in result["rows"]]
    assert [row["patch"] for row in result["rows"]] == [8, 12]
    assert estimates[0] < estimates[1] < result["full"]["estimate_bytes"]
    patch_bytes = [row["patch_activation_bytes"] for row in result["rows"]]
    assert patch_bytes[0] < patch_bytes[1] <= estimates[1]
    assert not any(row["measured"] for row in result["rows"] + [result["full"]])
    assert result["problem"]["shape"] == [16, 16, 16] and result["problem"]["coils"] == 2
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "full" in capsys.readouterr().out


@pytest.mark.parametrize("loss_fraction", [None, 0.4])
def test_estimate_equals_cpu_count(loss_fraction):
    """The meta estimate counts exactly what a real CPU step holds (NUFFT adjoint included),
    supervised and self-supervised (held-out NUFFT forward included)."""
    problem = StepProblem(
        (16, 12, 16),
        coils=3,
        unrolls=2,
        spokes=60,
        width=4,
        n_layers=2,
        coil_batch=2,
        loss_fraction=loss_fraction,
    )
    for patch in (8, None):
        model, inputs = build_model(problem, patch), build_inputs(problem)
        training_step(model, inputs)  # builds the Toeplitz kernel, as before any real step
        graph = saved_bytes(lambda m=model, i=inputs: training_step(m, i))
        assert estimate_step_bytes(problem, patch) == max(graph, nufft_workspace_bytes(problem))
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_block_wise_step_grows_linearly_with_the_volume():
    """Doubling the volume doubles the block-wise step (its volume-sized states and the DC's 2x
    grid); the patch activations add nothing that grows, and full backprop stays well above."""
    small, large = (
        StepProblem(s, coils=1, unrolls=1, width=16, n_layers=3)
        for s in ((16, 16, 32), (16, 32, 32))
    )
    growth = estimate_step_bytes(large, 8) / estimate_step_bytes(small, 8)
    assert 1.9 < growth < 2.1
    assert estimate_step_bytes(large, None) > 1.5 * estimate_step_bytes(large, 8)


def test_checkpointing_unrolls_lowers_the_estimate():
    plain = StepProblem((16, 16, 16), coils=1, unrolls=3, width=4, n_layers=2)
    checkpointed = StepProblem(
        (16, 16, 16), coils=1, unrolls=3, width=4, n_layers=2, checkpoint_unrolls=True
    )
    assert estimate_step_bytes(checkpointed, 8) < estimate_step_bytes(plain, 8)


def test_measured_step_on_cpu(tmp_path):
    out = tmp_path / "mem.json"
    code = main(
        [
            "bench",
            "memory",
            *TINY,
            "--patch",
            "8",
            "--width",
            "4",
            "--layers",
            "2",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    row, full = result["rows"][0], result["full"]
    assert row["measured"] and full["measured"]  # tiny: the full step fits in memory
    workspace = nufft_workspace_bytes(StepProblem((16, 16, 16), coils=2, unrolls=2))
    assert row["estimate_bytes"] == max(row["saved_bytes"], workspace)
    assert 0 < row["saved_bytes"] < full["saved_bytes"]
    assert row["rss_bytes"] > 0 and row["seconds"] > 0


@pytest.mark.parametrize("shape", [(32, 32, 32), (64, 64, 64)])
def test_self_supervised_step_peak_within_1_2x_of_supervised(shape):
    """Data plus step: holding out 40% of the spokes for a k-space loss costs at most 20%."""
    problems = [StepProblem(shape, loss_fraction=f) for f in (None, 0.4)]
    peaks = [sum(step_memory.data_bytes(p).values()) + estimate_step_bytes(p, 16) for p in problems]
    assert peaks[1] <= 1.2 * peaks[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--patch", "8", "--self-supervised", "--loss-fraction", "1"], "loss fraction"),
        (["--patch", "32"], "larger than the volume"),
        (["--patch", "0"], "patch size must be a positive integer"),
        (["--patch", "8", "--coils", "0"], "coils must be a positive integer"),
        (["--patch", "8", "--json", "/nonexistent/folder/x.json"], "does not exist"),
    ],
)
def test_bad_input_exits_2(args, message, capsys):
    code = main(["bench", "memory", *TINY, *args, "--estimate-only", "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cuda_without_gpu_exits_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = main(["bench", "memory", *TINY, "--patch", "8", "--device", "cuda", "--no-progress"])
    assert code == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_estimate_over_the_first_patches_equals_the_count_over_all():
    """The estimate runs a few patches; a meta step over all twelve peaks at the same bytes."""
    problem = StepProblem((40, 24, 32), coils=2, unrolls=2, coil_batch=1)
    model, inputs = build_model(problem, 16).to("meta"), build_inputs(problem, "meta")
    assert len(model.regularizers[0].plan(problem.shape)) == 12 > ESTIMATE_PATCHES
    graph = saved_bytes(lambda: training_step(model, inputs))
    assert estimate_step_bytes(problem, 16) == max(graph, nufft_workspace_bytes(problem))


SMALL_NET = ["--unrolls", "1", "--width", "4", "--layers", "2", "--no-progress"]


def _must_not_run(*args, **kwargs):
    raise AssertionError("reached after the input should have been refused")


def test_huge_volume_is_estimated_in_seconds(tmp_path):
    """32768 patches of 32^3: the estimate's time does not grow with the number of patches."""
    out = tmp_path / "huge.json"
    start = time.perf_counter()
    assert (
        main(
            [
                "bench",
                "memory",
                "--shape",
                "1024",
                "1024",
                "1024",
                *SMALL_NET,
                "--patch",
                "32",
                "--estimate-only",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert time.perf_counter() - start < 60
    result = json.loads(out.read_text())
    assert result["rows"][0]["estimate_bytes"] > 1024**3 * 8  # at least a complex volume


def test_measured_run_that_cannot_fit_is_refused(tmp_path, capsys, monkeypatch):
    """2048^3 (terabytes of data) is refused before anything is allocated."""
    monkeypatch.setattr(step_memory, "measure_step", _must_not_run)
    out = tmp_path / "huge.json"
    code = main(
        [
            "bench",
            "memory",
            "--shape",
            "2048",
            "2048",
            "2048",
            *SMALL_NET,
            "--patch",
            "1024",
            "--json",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("blockrecon bench: error: ")
    assert "2048x2048x2048" in err and "GiB of memory" in err and "available" in err
    assert not out.exists()


def test_unwritable_json_is_refused_before_any_estimate(read_only_folder, capsys, monkeypatch):
    monkeypatch.setattr(step_memory, "memory_table", _must_not_run)
    out = read_only_folder / "mem.json"
    code = main(["bench", "memory", *TINY, "--patch", "8", "--estimate-only", "--json", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"cannot write {out}: Read-only file system" in err
    assert ".partial" not in err and list(read_only_folder.iterdir()) == []
