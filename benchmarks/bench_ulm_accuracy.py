"""Jaccard and RMSE vs bubble concentration of trained ULM networks on held-out simulations.

    blockrecon ulm train --data train_c4.h5 train_c8.h5 train_c16.h5 --kind sparse --out s.pt
    python benchmarks/bench_ulm_accuracy.py --model sparse=s.pt [--model dense=d.pt] [--quick]
"""

import argparse
import json
from pathlib import Path

from blockrecon.ulm.evaluation import evaluate_model
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.training import load_model

RESULTS = Path(__file__).parent / "results"


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=FILE")
    parser.add_argument("--shape", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--concentrations", type=float, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--quick", action="store_true", help="two concentrations, 32 frames")
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_accuracy.json")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.concentrations = 32, args.concentrations[:2]
    models = {m.split("=", 1)[0]: load_model(m.split("=", 1)[1]) for m in args.model}
    rows = []
    print(f"{'model':8s} {'conc':>6s} {'jaccard':>8s} {'rmse':>8s} {'precision':>9s} "
          f"{'recall':>7s}")
    for c in args.concentrations:
        acq = simulate_acquisition(args.shape, args.frames, c, seed=1000 + int(c),
                                   progress=False)  # seeds unused by the training files
        for name, model in models.items():
            s = evaluate_model(model, acq, 16, progress=False)
            rows.append({"model": name, "concentration": c, **s})
            print(f"{name:8s} {c:6g} {s['jaccard']:8.3f} {s['rmse']:8.3f} "
                  f"{s['precision']:9.3f} {s['recall']:7.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
