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

from blockrecon.cli.output import write_json
from blockrecon.physics import available_backends
from blockrecon.physics._nufft.finufft_backend import DEFAULT_EPS
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.trajectory import radial_3d


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _round_robin(cases: dict[str, dict[str, Callable]], repeats: int) -> dict[str, dict]:
    """Median seconds of every (method, operation); one call of each per round, so that load
    from other processes hits all methods alike."""
    samples = {(m, o): [] for m, ops in cases.items() for o in ops}
    for _ in range(repeats):
        for (method, op), times in samples.items():
            times.append(_timed(cases[method][op]))
    medians: dict[str, dict] = {m: {} for m in cases}
    for (method, op), times in samples.items():
        medians[method][op] = statistics.median(times)
    return medians


def _wrapper_case(backend: str, coord, image, kspace) -> tuple[float, dict]:
    """(setup seconds: plans + Toeplitz kernel + first calls, operations)."""
    op = NUFFT(coord, image.shape[1:], backend=backend)
    setup = _timed(lambda: (op(image), op.adjoint(kspace), op.normal(image)))
    return setup, {
        "forward": lambda: op(image),
        "adjoint": lambda: op.adjoint(kspace),
        "normal": lambda: op.normal(image),
    }


def _raw_finufft_case(coord, image, kspace) -> tuple[float, dict]:
    import finufft

    shape, coils = image.shape[1:], image.shape[0]
    points = [
        np.ascontiguousarray(coord[..., d].reshape(-1).numpy() * (2 * np.pi / n))
        for d, n in enumerate(shape)
    ]
    eps = DEFAULT_EPS[torch.complex64]
    image_np, kspace_np = image.numpy(), kspace.reshape(coils, -1).numpy()
    plans = {}

    def make() -> None:
        for name, nufft_type, isign, data in (
            ("forward", 2, -1, image_np),
            ("adjoint", 1, 1, kspace_np),
        ):
            plans[name] = finufft.Plan(
                nufft_type, shape, n_trans=coils, eps=eps, isign=isign, dtype="complex64"
            )
            plans[name].setpts(*points)
            plans[name].execute(data)

    setup = _timed(make)
    return setup, {
        "forward": lambda: plans["forward"].execute(image_np),
        "adjoint": lambda: plans["adjoint"].execute(kspace_np),
    }


def _write_cfl(stem: Path, array: np.ndarray) -> None:
    """BART .hdr/.cfl pair: complex64, column-major (first axis fastest)."""
    stem.with_suffix(".hdr").write_text(
        "# Dimensions\n" + " ".join(str(s) for s in array.shape) + "\n"
    )
    np.asarray(array, dtype=np.complex64).T.tofile(stem.with_suffix(".cfl"))


def _bart_case(folder: Path, coord, image, kspace) -> tuple[None, dict]:
    """BART wall time per process call (startup and .cfl input/output included)."""
    dims = ":".join(str(n) for n in image.shape[1:])
    _write_cfl(folder / "traj", coord.permute(2, 1, 0).numpy())  # (3, readout, spokes)
    _write_cfl(folder / "img", image.permute(1, 2, 3, 0).numpy())  # (x, y, z, coils)
    _write_cfl(folder / "ksp", kspace.permute(2, 1, 0).numpy()[None])  # (1, read, spokes, coils)

    def run(*args: str) -> None:
        subprocess.run(["bart", "nufft", *args], check=True, capture_output=True, cwd=folder)

    return None, {
        "forward": lambda: run("traj", "img", "out_k"),
        "adjoint": lambda: run("-a", "-d", dims, "traj", "ksp", "out_i"),
    }


def bench_size(size: int, coils: int, repeats: int) -> list[dict]:
    """All rows for one image size."""
    gen = torch.Generator().manual_seed(0)
    coord = radial_3d(round(0.3 * size**2), size)
    image = torch.randn(coils, size, size, size, dtype=torch.complex64, generator=gen)
    kspace = torch.randn(coils, *coord.shape[:-1], dtype=torch.complex64, generator=gen)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        cases = {
            f"blockrecon/{b}": _wrapper_case(b, coord, image, kspace)
            for b in available_backends("cpu")
        }
        if "finufft" in available_backends("cpu"):
            cases["raw finufft"] = _raw_finufft_case(coord, image, kspace)
        if shutil.which("bart"):
            cases["bart nufft"] = _bart_case(Path(tmp), coord, image, kspace)
        medians = _round_robin({m: ops for m, (_, ops) in cases.items()}, repeats)
    runs = {m: {"setup": cases[m][0], **medians[m]} for m in cases}
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
            value = "" if row.get(c) is None else row[c]
            cells.append(f"{value:>12.3f}" if isinstance(value, float) else f"{value!s:>12}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


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
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"threads": torch.get_num_threads(), "rows": rows})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
