"""NUFFT forward / adjoint / Toeplitz normal time per coil on a 3D golden-angle radial trajectory.

For each image size N (64^3 and 128^3; ``--quick``: 64^3 only, fewer repeats) the trajectory is
``radial_3d(n_spokes, N)`` with ``n_spokes = round(0.3 N^2)`` (about 640k samples at 128^3) and a
batch of ``--coils`` random complex64 images. Rows:

- ``blockrecon/<backend>``: ``NUFFT(...).forward``, ``.adjoint`` and ``.normal`` (Toeplitz) for
  every backend installed for CPU tensors (plans and the Toeplitz kernel built in a warm-up call,
  reported apart as ``setup s``);
- ``raw finufft``: ``finufft.Plan`` called directly with the same dtype, eps and batch (no torch,
  no scaling) - the floor for the wrapper;
- ``bart nufft``: the BART command-line program (when installed) on .cfl files, wall time of the
  process including file input/output.

Times are the median of the repeats, divided by the number of coils. Ratios reported: wrapper over
raw FINUFFT (goal <= 1.25) and NUFFT pair (forward + adjoint) over Toeplitz normal (goal >= 3).

Usage: python benchmarks/bench_nufft.py [--quick] [--coils C] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from blockrecon.physics._nufft import available_backends
from blockrecon.physics._nufft.finufft_backend import DEFAULT_EPS
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.trajectory import radial_3d


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bench_wrapper(backend: str, coord, image, kspace, repeats: int) -> dict:
    start = time.perf_counter()
    op = NUFFT(image.shape[1:], coord, backend=backend)
    op(image)
    op.adjoint(kspace)
    op.normal(image)
    setup = time.perf_counter() - start
    with torch.no_grad():
        return {
            "setup": setup,
            "forward": _median_seconds(lambda: op(image), repeats),
            "adjoint": _median_seconds(lambda: op.adjoint(kspace), repeats),
            "normal": _median_seconds(lambda: op.normal(image), repeats),
        }


def _bench_raw_finufft(coord, image, kspace, repeats: int) -> dict:
    import finufft

    shape, coils = image.shape[1:], image.shape[0]
    points = [
        np.ascontiguousarray(coord[..., d].reshape(-1).numpy() * (2 * np.pi / n))
        for d, n in enumerate(shape)
    ]
    eps = DEFAULT_EPS[torch.complex64]
    image_np, kspace_np = image.numpy(), kspace.reshape(coils, -1).numpy()
    start = time.perf_counter()
    forward = finufft.Plan(2, shape, n_trans=coils, eps=eps, isign=-1, dtype="complex64")
    forward.setpts(*points)
    adjoint = finufft.Plan(1, shape, n_trans=coils, eps=eps, isign=1, dtype="complex64")
    adjoint.setpts(*points)
    setup = time.perf_counter() - start
    forward.execute(image_np)
    adjoint.execute(kspace_np)
    return {
        "setup": setup,
        "forward": _median_seconds(lambda: forward.execute(image_np), repeats),
        "adjoint": _median_seconds(lambda: adjoint.execute(kspace_np), repeats),
    }


def _write_cfl(stem: Path, array: np.ndarray) -> None:
    """BART .hdr/.cfl pair: complex64, column-major (first axis fastest)."""
    stem.with_suffix(".hdr").write_text(
        "# Dimensions\n" + " ".join(str(s) for s in array.shape) + "\n"
    )
    np.asarray(array, dtype=np.complex64).T.tofile(stem.with_suffix(".cfl"))


def _bench_bart(coord, image, kspace, repeats: int) -> dict:
    """BART wall time per process call (startup and .cfl input/output included)."""
    dims = ":".join(str(n) for n in image.shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_cfl(tmp / "traj", coord.permute(2, 1, 0).numpy())  # (3, readout, spokes)
        _write_cfl(tmp / "img", image.permute(1, 2, 3, 0).numpy())  # (x, y, z, coils)
        ksp = kspace.permute(2, 1, 0).numpy()[None]  # (1, readout, spokes, coils)
        _write_cfl(tmp / "ksp", ksp)

        def run(*args: str) -> None:
            subprocess.run(["bart", "nufft", *args], check=True, capture_output=True, cwd=tmp)

        return {
            "forward": _median_seconds(lambda: run("traj", "img", "out_k"), repeats),
            "adjoint": _median_seconds(
                lambda: run("-a", "-d", dims, "traj", "ksp", "out_i"), repeats
            ),
        }


def bench_size(size: int, coils: int, repeats: int) -> list[dict]:
    """All rows for one image size."""
    gen = torch.Generator().manual_seed(0)
    coord = radial_3d(round(0.3 * size**2), size)
    image = torch.randn(coils, size, size, size, dtype=torch.complex64, generator=gen)
    kspace = torch.randn(coils, *coord.shape[:-1], dtype=torch.complex64, generator=gen)
    runs = {
        f"blockrecon/{b}": _bench_wrapper(b, coord, image, kspace, repeats)
        for b in available_backends("cpu")
    }
    if "finufft" in available_backends("cpu"):
        runs["raw finufft"] = _bench_raw_finufft(coord, image, kspace, repeats)
    if shutil.which("bart"):
        runs["bart nufft"] = _bench_bart(coord, image, kspace, max(1, repeats // 2))
    rows = []
    for name, times in runs.items():
        row = {
            "size": size,
            "samples": coord.shape[0] * coord.shape[1],
            "coils": coils,
            "method": name,
        }
        row.update({k: v / coils if k != "setup" else v for k, v in times.items()})
        if "normal" in row:
            row["pair/normal"] = (row["forward"] + row["adjoint"]) / row["normal"]
        if "raw finufft" in runs and name != "raw finufft":
            raw = runs["raw finufft"]
            row["vs raw"] = (times["forward"] + times["adjoint"]) / (
                raw["forward"] + raw["adjoint"]
            )
        rows.append(row)
    return rows


def _table(rows: list[dict]) -> str:
    columns = [
        "size",
        "samples",
        "method",
        "setup",
        "forward",
        "adjoint",
        "normal",
        "pair/normal",
        "vs raw",
    ]
    lines = [" | ".join(f"{c:>12}" for c in columns)]
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            cells.append(f"{value:>12.3f}" if isinstance(value, float) else f"{value!s:>12}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64^3 only, fewer repeats")
    parser.add_argument("--coils", type=int, default=None, help="coils per call (default 4, 2)")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "bench_nufft.json"
    )
    args = parser.parse_args(argv)
    sizes, repeats = ((64,), 3) if args.quick else ((64, 128), 5)
    coils = args.coils or (2 if args.quick else 4)
    rows = [row for size in sizes for row in bench_size(size, coils, repeats)]
    print(
        f"seconds per coil (setup: whole batch), {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} cores, complex64, finufft eps {DEFAULT_EPS[torch.complex64]}"
    )
    print(_table(rows))
    _write_json(args.json, {"threads": torch.get_num_threads(), "rows": rows})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
