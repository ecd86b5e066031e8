"""``benchmarks/bench_peers.py --quick`` with blockrecon alone: peers that cannot be imported
are skipped with a note, and blockrecon's rows are accurate against the exact sums."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_peers.py"


def test_quick_run_skips_missing_peers(tmp_path):
    missing = tmp_path / "missing"  # packages that fail to import, as if not installed
    for name in ("mrpro", "torchkbnufft"):
        (missing / name).mkdir(parents=True)
        (missing / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
    out, png = tmp_path / "peers.json", tmp_path / "peers.png"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(missing), *sys.path])}
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--quick", "--sizes", "16", "--repeats", "1", "--cg-iters", "3", "--threads", "1"),
            *("--libraries", "blockrecon", "blockrecon pair", "mrpro", "torchkbnufft"),
            *("--json", str(out), "--plot", str(png)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [row["library"] for row in result["rows"]] == ["blockrecon", "blockrecon pair"]
    for name in ("mrpro", "torchkbnufft"):
        assert result["notes"][name] == f"skipped: no {name} here"
    toeplitz, pair = result["rows"]
    for row in (toeplitz, pair):
        assert row["forward_err"] < 1e-4 and row["adjoint_err"] < 1e-4  # FINUFFT eps 1e-5
        assert row["normal_err"] < 1e-4  # against the exact E^H E
        assert row["normal_s"] > 0
    assert toeplitz["cg_psnr"] > 10 and "cg_s" not in pair
    assert result["threads"] == 1 and png.stat().st_size > 0
    assert "skipped: no mrpro here" in done.stdout


def test_sigpy_is_skipped_where_its_toeplitz_setup_cannot_fit(monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_peers
    finally:
        sys.path.remove(str(SCRIPT.parent))
    monkeypatch.setattr("blockrecon.memory.available_memory_bytes", lambda: 16e9)
    problem = types.SimpleNamespace(size=128)
    with pytest.raises(bench_peers.TooLarge, match="more than 19 GB here, 16 GB available"):
        bench_peers.sigpy_case(problem)
