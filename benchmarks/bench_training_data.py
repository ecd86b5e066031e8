"""Training on a folder of large scans: peak memory and time of one epoch against the budget
for built training pairs (``blockrecon train --data DIR --data-memory GIB``).

``--files`` simulated 3D radial scans of ``--size``^3 (``--coils`` birdcage coils, 8x angular
undersampling, maps and reference images stored) are written once into ``--folder``. Then one
epoch of ``blockrecon train`` runs in a fresh process per budget, and the process's peak
resident memory (``ru_maxrss``, ``MALLOC_MMAP_THRESHOLD_`` set so that freed buffers return to
the system) and wall time are reported with the data's size when built and what stayed in
memory (``data_bytes_kept`` of ``metrics.jsonl``). The network is small on purpose: the
measurement is about the data, not the regularizer.

Usage: python benchmarks/bench_training_data.py [--files 20] [--size 128] [--budgets 1 none]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from blockrecon.cli.output import write_json
from blockrecon.io import write_acquisition
from blockrecon.io.hdf5 import read_acquisition_info
from blockrecon.memory import peak_rss
from blockrecon.physics import radial_3d, simulate_acquisition
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.train.files import estimated_pair_bytes

GIB = 2**30
NETWORK = ["--width", "4", "--layers", "2", "--unrolls", "1", "--no-progress"]


def write_scans(folder: Path, files: int, size: int, coils: int) -> None:
    """Simulated scans ``scan000.h5``...; files already there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    coord = radial_3d(radial_spokes(size), size)
    for i in range(files):
        path = folder / f"scan{i:03d}.h5"
        if path.exists():
            continue
        started = time.perf_counter()
        acq = simulate_acquisition(coord, (size,) * 3, n_coils=coils, snr_db=30, seed=i)
        write_acquisition(path, acq)
        print(f"  wrote {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def one_epoch(folder: Path, budget_gib: float | None, patch: int) -> dict:
    """Peak RSS and wall time of one training epoch under ``budget_gib`` (``None``: all)."""
    with tempfile.TemporaryDirectory() as run:
        command = [sys.executable, "-m", "blockrecon", "train", "--data", str(folder)]
        command += ["--out", f"{run}/run", "--epochs", "1", "--patch", str(patch), *NETWORK]
        command += ["--data-memory", str(1e6 if budget_gib is None else budget_gib)]
        started = time.perf_counter()
        peak = peak_rss(command).peak
        seconds = time.perf_counter() - started
        record = json.loads(Path(f"{run}/run/metrics.jsonl").read_text().splitlines()[-1])
    return {
        "budget_gib": budget_gib,
        "peak_rss_gib": peak / GIB,
        "seconds": seconds,
        "kept_gib": record["data_bytes_kept"] / GIB,
        "builds": record["data_builds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument(
        "--budgets", nargs="+", default=["1", "none"], help="GiB per run, 'none' for no limit"
    )
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/training_scans"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/training_data.json"))
    args = parser.parse_args(argv)
    write_scans(args.folder, args.files, args.size, args.coils)
    paths = sorted(args.folder.glob("scan*.h5"))[: args.files]
    built = sum(estimated_pair_bytes(read_acquisition_info(p)) for p in paths) / GIB
    on_disk = sum(p.stat().st_size for p in paths) / GIB
    rows = []
    for budget in args.budgets:
        budget_gib = None if budget == "none" else float(budget)
        rows.append(one_epoch(args.folder, budget_gib, min(32, args.size)))
        print(rows[-1], file=sys.stderr)
    print(
        f"{len(paths)} files of {args.size}^3, {args.coils} coils: {on_disk:.2f} GiB on disk, "
        f"{built:.2f} GiB as built training pairs"
    )
    print(f"{'budget GiB':>10} {'kept GiB':>9} {'builds':>7} {'peak RSS GiB':>13} {'epoch s':>8}")
    for row in rows:
        budget = "none" if row["budget_gib"] is None else f"{row['budget_gib']:g}"
        print(
            f"{budget:>10} {row['kept_gib']:9.2f} {row['builds']:7d} "
            f"{row['peak_rss_gib']:13.2f} {row['seconds']:8.1f}"
        )
    write_json(
        args.json,
        {
            "files": len(paths),
            "size": args.size,
            "coils": args.coils,
            "on_disk_gib": on_disk,
            "built_gib": built,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
