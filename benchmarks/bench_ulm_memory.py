"""Memory of one ULM training step, dense vs sparse, 2D+t and 3D+t (wraps
``blockrecon ulm bench-memory``: dense counted on the meta device, sparse run for real).

    python benchmarks/bench_ulm_memory.py [--model2d sparse2d.pt] [--quick]
"""

import argparse
import json
from pathlib import Path

from blockrecon.cli import main
from blockrecon.cli.output import write_json

RESULTS = Path(__file__).parent / "results"


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model2d", type=Path, default=None, help="trained 2D sparse model")
    parser.add_argument("--model3d", type=Path, default=None, help="trained 3D sparse model")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_memory.json")
    args = parser.parse_args()
    frames, size = (16, 8) if args.quick else (512, 32)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results = {}
    for dims, model in ((2, args.model2d), (3, args.model3d)):
        out = args.json.with_name(f"{args.json.stem}_{dims}d.json")
        cmd = [
            "ulm",
            "--no-progress",
            "bench-memory",
            "--shape",
            *[str(size)] * dims,
            "--frames",
            str(frames),
            "--json",
            str(out),
        ]
        if model is not None:
            cmd += ["--model", str(model)]
        print(f"--- {dims}D+t, {size}^{dims} x {frames} frames")
        if main(cmd) != 0:
            return 1
        results[f"{dims}d"] = json.loads(out.read_text())
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
