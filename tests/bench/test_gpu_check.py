"""``benchmarks/gpu_check.py``: its whole logic on the CPU at tiny sizes, and its exit without
CUDA."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture
def gpu_check(monkeypatch):
    """The script imported as a module."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gpu_check

    return gpu_check


def run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_cpu_run_writes_every_check_passing(tmp_path):
    """CPU against CPU: the same computations agree, the meta estimate counts a CPU step
    exactly. The speed row is only required to be finite (timing is not asserted). One
    OpenMP thread: on a loaded machine more threads than free cores make it 5x slower."""
    out = tmp_path / "check.json"
    done = run_script(
        "--quick",
        "--device",
        "cpu",
        "--backends",
        "finufft",
        "--json",
        str(out),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    result = json.loads(out.read_text())
    rows = {row["check"]: row for row in result["rows"]}
    speed = [check for check in rows if check.startswith("speed-up MBDL")]
    assert len(speed) == 1
    assert {
        "nufft backends on device",
        "nufft adjointness",
        "nufft forward vs DFT",
        "nufft adjoint vs DFT",
        "toeplitz normal vs DFT",
        "CG-SENSE PSNR device - CPU (dB)",
        "MBDL PSNR device - CPU (dB)",
        "step memory / estimate, patch 8",
        "step memory / estimate, patch full",
        *speed,
    } == set(rows)
    assert all(math.isfinite(row["value"]) and row["error"] is None for row in rows.values())
    failed = [row for check, row in rows.items() if not row["passed"] and check not in speed]
    assert not failed, failed
    assert max(abs(row["value"]) for check, row in rows.items() if "PSNR" in check) < 1e-6
    assert [row["value"] for check, row in rows.items() if "memory" in check] == [1.0, 1.0]
    assert done.returncode == (0 if result["passed"] == result["total"] else 1)
    assert "checks passed on cpu" in done.stdout and "MBDL PSNR" in done.stdout


def test_a_failing_check_is_recorded_and_the_others_run(gpu_check):
    def broken() -> tuple[float, str]:
        raise RuntimeError("no kernel image")

    row = gpu_check.run_check("broken", "cufinufft", gpu_check.Target("<=", 1.0), broken)
    assert not row.passed and row.value is None
    assert row.error == "RuntimeError: no kernel image"
    assert "no kernel image" in gpu_check.format_table([row])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_exits_2_without_cuda(tmp_path):
    out = tmp_path / "check.json"
    done = run_script("--json", str(out))
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("gpu_check: no CUDA device: ")
    assert not out.exists()
