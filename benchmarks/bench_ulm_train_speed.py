"""Speed of ULM training steps (`blockrecon ulm train`'s loop), one code tree against another.

Each run happens in a fresh subprocess: read the acquisitions, cut blocks as `ulm train` does
(`acquisition_blocks`, 16 frames), build the default network of ``--kind`` after
``torch.manual_seed(seed)`` and time ``train_ulm`` for ``--steps`` steps (Adam, lr 1e-2, batch
4, no checkpoint, no calibration). With ``--code NAME=DIR`` (repeatable) the package is imported
from ``DIR`` (e.g. an exported older commit: ``git archive <commit> blockrecon | tar -x -C
DIR``) instead of this checkout; the code trees run interleaved, ``--repeats`` times each, and
the table gives the median wall-clock steps/s, the median process CPU seconds (less
sensitive to other jobs on a shared machine: one thread) and the largest loss difference to
the first tree (same seed, so the same batches and, within float rounding, the same losses).

Usage: python benchmarks/bench_ulm_train_speed.py --data a.h5 b.h5 ... [--steps 40]
    [--repeats 3] [--threads 1] [--code baseline=/tmp/baseline] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(data: list[str], steps: int, kind: str, seed: int, frames: int) -> dict:
    """Time ``steps`` training steps in this process; returns seconds, losses and the package
    path actually imported."""
    import torch

    import blockrecon
    from blockrecon.io.ulm import read_ulm_acquisition
    from blockrecon.ulm.blocks import acquisition_blocks, concat_blocks
    from blockrecon.ulm.nets import UlmNetConfig
    from blockrecon.ulm.training import build_model, train_ulm

    acquisitions = [read_ulm_acquisition(p) for p in data]
    blocks = concat_blocks([acquisition_blocks(a, frames) for a in acquisitions])
    torch.manual_seed(seed)
    config = UlmNetConfig(spatial_dims=blocks.inputs.ndim - 3)
    model = build_model(kind, config)
    start, cpu = time.perf_counter(), time.process_time()
    losses = train_ulm(model, blocks, steps, seed=seed, progress=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    package = str(Path(blockrecon.__file__).parent)
    return {"seconds": seconds, "cpu_seconds": cpu, "losses": losses, "package": package}


def _run(code: str | None, args: argparse.Namespace) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if code is not None:
        env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--kind", args.kind]
    cmd += ["--seed", str(args.seed), "--frames", str(args.frames), "--data", *args.data]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"run with code {code or 'checkout'} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="acquisition .h5 files")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kind", choices=("sparse", "dense"), default="sparse")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=16, help="frames per block")
    parser.add_argument(
        "--code", action="append", default=[], metavar="NAME=DIR", help="extra code tree"
    )
    parser.add_argument(
        "--json", type=Path, default=HERE / "results" / "bench_ulm_train_speed.json"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.data, args.steps, args.kind, args.seed, args.frames)))
        return 0
    args.data = [str(Path(p).resolve()) for p in args.data]
    trees: list[tuple[str, str | None]] = []
    for item in args.code:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder, "blockrecon").is_dir():
            raise SystemExit(f"--code {item!r}: expected NAME=DIR with DIR/blockrecon")
        trees.append((name, str(Path(folder).resolve())))
    trees.append(("checkout", str(HERE.parent)))
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    loads = []
    for _ in range(args.repeats):
        for name, folder in trees:
            loads.append(os.getloadavg()[0])
            runs[name].append(_run(folder, args))
    first = runs[trees[0][0]][0]["losses"]
    rows = []
    for name, _ in trees:
        seconds = statistics.median(r["seconds"] for r in runs[name])
        cpu = statistics.median(r["cpu_seconds"] for r in runs[name])
        diff = max(abs(a - b) for a, b in zip(runs[name][0]["losses"], first, strict=True))
        rows.append(
            {
                "code": name,
                "package": runs[name][0]["package"],
                "seconds": [r["seconds"] for r in runs[name]],
                "median_s": seconds,
                "cpu_seconds": [r["cpu_seconds"] for r in runs[name]],
                "median_cpu_s": cpu,
                "steps_per_s": args.steps / seconds,
                "max_loss_diff": diff,
                "loss_first_last": [runs[name][0]["losses"][0], runs[name][0]["losses"][-1]],
            }
        )
    print(
        f"ULM {args.kind} training, {args.steps} steps, batch 4, {args.threads} thread(s), "
        f"median of {args.repeats} interleaved runs; load average {min(loads):.2f}-{max(loads):.2f}"
    )
    head = (
        f"{'code':<12}{'median s':>10}{'steps/s':>9}{'speedup':>9}{'CPU s':>8}{'CPU x':>7}"
        f"{'max |dloss|':>13}"
    )
    print(head + "\n" + "-" * len(head))
    base, base_cpu = rows[0]["median_s"], rows[0]["median_cpu_s"]
    for r in rows:
        print(
            f"{r['code']:<12}{r['median_s']:>10.2f}{r['steps_per_s']:>9.3f}"
            f"{base / r['median_s']:>9.2f}{r['median_cpu_s']:>8.2f}"
            f"{base_cpu / r['median_cpu_s']:>7.2f}{r['max_loss_diff']:>13.2e}"
        )
    from blockrecon.cli.output import write_json

    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        args.json, {"steps": args.steps, "threads": args.threads, "loads": loads, "rows": rows}
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
