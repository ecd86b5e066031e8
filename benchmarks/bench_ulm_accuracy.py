"""Jaccard and RMSE vs bubble concentration: conventional ULM and trained networks, one run.

Every concentration gets one held-out simulation; conventional ULM (weighted centroid, all
localizations and those kept by tracking) and each network are scored on the same frames with the
same PALA rules (:func:`blockrecon.ulm.localization_scores`: TP within lambda/4, RMSE over pairs
within lambda/2), networks decoded at their calibrated threshold (``--no-split``: without
splitting merged discs). Two reference rows decode the training targets themselves (a perfect
network's map), with and without the split: the ceiling the decoding sets. Without ``--model``
only these and the conventional baseline run. The default 16x16 field at 2..64 bubbles/frame
spans 0.008 to 0.25 bubbles per pixel, i.e. 32 to 1,024 bubbles/frame on a 64x64 field.

    for c in 2 4 8 16 32 64; do blockrecon ulm simulate --out train_c$c.h5 --shape 16 16 \
        --frames 512 --concentration $c --seed $c; done
    blockrecon ulm train --data train_c*.h5 --kind sparse --steps 3000 --out s.pt
    python benchmarks/bench_ulm_accuracy.py --model sparse=s.pt [--model dense=d.pt] [--quick]
"""

import argparse
from dataclasses import asdict
from pathlib import Path

import torch

from blockrecon.atomic import atomic_write
from blockrecon.cli.output import write_json
from blockrecon.ulm import conventional_ulm, localization_scores, simulate_acquisition
from blockrecon.ulm.blocks import TARGET_RADIUS, acquisition_blocks
from blockrecon.ulm.evaluation import evaluate_model, score_logits
from blockrecon.ulm.metrics import LocalizationScores
from blockrecon.ulm.training import load_model

RESULTS = Path(__file__).parent / "results"
BLOCK_FRAMES = 16


def _frames(text: str) -> int:
    value = int(text)
    if value <= 0 or value % BLOCK_FRAMES:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of {BLOCK_FRAMES}")
    return value


def _named_model(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(path)


def ideal_map_scores(acquisition, split_radius) -> LocalizationScores:
    """LocalizationScores of the training targets themselves (a perfect network's 8x map)
    decoded with ``split_radius``: the ceiling the decoding puts on every network."""
    blocks = acquisition_blocks(acquisition, BLOCK_FRAMES)
    logits = (
        torch.where(blocks.targets.select([i]).dense(8) > 0, 50.0, -50.0)
        for i in range(blocks.inputs.shape[0])
    )
    return score_logits(logits, blocks, acquisition, 0.5, split_radius)


def score_methods(acquisition, models: dict) -> dict:
    """LocalizationScores of conventional ULM, of the ideal map (split and not) and of every
    network on ``acquisition``."""
    conventional = conventional_ulm(acquisition.iq, acquisition.pixel_size, acquisition.frame_rate)
    truth = acquisition.positions, acquisition.frames
    scores = {
        "conventional": localization_scores(*truth, conventional.positions, conventional.frames),
        "conventional tracked": localization_scores(*truth, *conventional.tracked()),
        "ideal map": ideal_map_scores(acquisition, TARGET_RADIUS),
        "ideal map, no split": ideal_map_scores(acquisition, None),
    }
    for name, model in models.items():
        scores[name] = evaluate_model(model, acquisition, BLOCK_FRAMES, progress=False)
    return scores


def save_plot(rows: list[dict], title: str, path: Path) -> None:
    """Jaccard and RMSE against concentration, one line per method (log concentration axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        style = {"linestyle": ":"} if method.startswith("ideal") else {"marker": "o"}
        for ax, key in zip(axes, ("jaccard", "rmse"), strict=True):
            ax.plot(
                [r["concentration"] for r in mine], [r[key] for r in mine], label=method, **style
            )
    for ax, label in zip(
        axes, ("Jaccard index", "RMSE (lambda), pairs within lambda/2"), strict=True
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bubbles per frame")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=_named_model,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="trained network (repeatable)",
    )
    parser.add_argument("--shape", type=int, nargs="+", default=[16, 16])
    parser.add_argument(
        "--frames",
        type=_frames,
        default=128,
        help=f"frames per simulation, a multiple of {BLOCK_FRAMES}",
    )
    parser.add_argument("--concentrations", type=float, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--quick", action="store_true", help="two concentrations, 32 frames")
    parser.add_argument(
        "--no-split",
        action="store_true",
        help="decode the networks without splitting merged discs (one bubble "
        "per connected component)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_accuracy.json")
    parser.add_argument(
        "--plot", type=Path, default=None, help="PNG of Jaccard and RMSE against concentration"
    )
    args = parser.parse_args()
    if args.quick:
        args.frames, args.concentrations = 32, args.concentrations[:2]
    models = {name: load_model(path).model for name, path in args.model}
    if args.no_split:
        for model in models.values():
            model.split_radius = None
    for name, model in models.items():
        print(
            f"{name}: {model.kind} network, {len(model.history)} training steps, decoded at "
            f"occupancy > {model.threshold}, split radius {model.split_radius}"
        )
    rows = []
    print(
        f"{'method':20s} {'conc':>6s} {'jaccard':>8s} {'rmse':>8s} {'precision':>9s} {'recall':>7s}"
    )
    for c in args.concentrations:
        acq = simulate_acquisition(
            args.shape, args.frames, c, seed=1000 + int(c), progress=False
        )  # seeds unused by the training files
        for name, s in score_methods(acq, models).items():
            rows.append({"method": name, "concentration": c, **asdict(s)})
            print(
                f"{name:20s} {c:6g} {s.jaccard:8.3f} {s.rmse:8.3f} {s.precision:9.3f} "
                f"{s.recall:7.3f}"
            )
    payload = {
        "shape": args.shape,
        "frames": args.frames,
        "rows": rows,
        "models": {
            name: {
                "file": str(path),
                "kind": models[name].kind,
                "steps": len(models[name].history),
                "threshold": models[name].threshold,
                "split_radius": models[name].split_radius,
            }
            for name, path in args.model
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, payload)
    print(f"wrote {args.json}")
    if args.plot is not None:
        shape = "x".join(map(str, args.shape))
        save_plot(
            rows, f"ULM on held-out {shape} simulations, {args.frames} frames each", args.plot
        )
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
