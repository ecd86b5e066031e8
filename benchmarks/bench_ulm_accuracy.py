"""Jaccard and RMSE vs bubble concentration, and PALA's scores: conventional ULM and trained
networks, one run.

Every concentration gets one held-out simulation; conventional ULM (weighted centroid, all
localizations and those kept by tracking) and each network are scored on the same frames with the
same PALA rules (:func:`blockrecon.ulm.localization_scores`: TP within lambda/4, RMSE over pairs
within lambda/2), networks decoded at their calibrated threshold (``--no-split``: without
splitting merged discs). PALA's scores (:mod:`blockrecon.ulm.pala_scores`) come with every row:
the mean localization error (PALA's "RMSE"), the saturation of the 8x density map of the
method's tracks, and the global score, whose gap is each method's on one held-out canal pair
(:mod:`blockrecon.ulm.canals`: two canals whose wall-to-wall distance grows from 0 to 2 lambda
across a field twice as wide as ``--shape``; measured on 0.125 to 1.875 lambda, away from the
field's edges; 2048 frames by default, since PALA's gap needs canals filled by many tracks: on
256 frames every method, conventional included, "resolved" the narrowest section between sparse
tracks). Two reference rows decode the training targets
themselves (a perfect network's map), with and without the split: the ceiling the decoding
sets. Without ``--model`` the network shipped with blockrecon for the dimensionality of
``--shape`` runs (:mod:`blockrecon.ulm.pretrained`, named ``shipped``); with ``--no-network``
only the reference rows and the conventional baseline run. The default 16x16 field
at 2..64 bubbles/frame spans 0.008 to 0.25 bubbles per pixel, i.e. 32 to 1,024 bubbles/frame on
a 64x64 field.

    for c in 2 4 8 16 32 64; do blockrecon ulm simulate --out train_c$c.h5 --shape 16 16 \
        --frames 512 --concentration $c --seed $c; done
    blockrecon ulm train --data train_c*.h5 --kind sparse --steps 3000 --out s.pt
    python benchmarks/bench_ulm_accuracy.py --model sparse=s.pt [--model dense=d.pt] [--quick]
    python benchmarks/bench_ulm_accuracy.py [--shape 12 12 12]     # the shipped network
"""

import argparse
from dataclasses import asdict
from pathlib import Path

import torch

from blockrecon.atomic import atomic_write
from blockrecon.cli.output import write_json
from blockrecon.ulm import conventional_ulm, simulate_acquisition, simulate_canal_pair
from blockrecon.ulm.blocks import TARGET_RADIUS, acquisition_blocks
from blockrecon.ulm.evaluation import (
    decode_blocks,
    evaluate_model,
    score_detections,
    scored_frames,
)
from blockrecon.ulm.metrics import LocalizationScores
from blockrecon.ulm.pala_scores import PalaScores, component_scores, global_score
from blockrecon.ulm.pretrained import pretrained_ulm_path
from blockrecon.ulm.training import load_model

RESULTS = Path(__file__).parent / "results"
BLOCK_FRAMES = 16


def _frames(text: str) -> int:
    value = int(text)
    if value <= 0 or value % BLOCK_FRAMES:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of {BLOCK_FRAMES}")
    return value


def add_held_out_arguments(parser: argparse.ArgumentParser, concentrations: list[float]) -> None:
    """``--model`` (default: the shipped network of the shape's dimensionality), ``--shape``,
    ``--frames``, ``--concentrations``, ``--threads`` and ``--seeds`` of the scripts that probe
    one network on the held-out simulations (seed 1000 + c)."""
    parser.add_argument(
        "--model", type=Path, default=None, help="model file (default: the shipped network)"
    )
    parser.add_argument("--shape", type=int, nargs="+", default=[32, 32, 32])
    parser.add_argument("--frames", type=_frames, default=64, help=f"a multiple of {BLOCK_FRAMES}")
    parser.add_argument("--concentrations", type=float, nargs="+", default=concentrations)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds",
        type=int,
        default=1000,
        help="simulation seeds SEEDS + c (default 1000: the held-out data; the shipped networks "
        "are trained on seeds c and the 3D one's decoding calibrated on 2000 + c)",
    )


def held_out_network(args: argparse.Namespace):
    """The network of :func:`add_held_out_arguments`' options (``--threads`` set for torch)."""
    torch.set_num_threads(args.threads)
    if args.model is None:
        return load_model(pretrained_ulm_path(len(args.shape))).model
    return load_model(args.model).model


def held_out_simulations(args: argparse.Namespace):
    """(concentration, held-out acquisition) for each of ``--concentrations``."""
    for c in args.concentrations:
        seed = args.seeds + int(c)
        yield c, simulate_acquisition(args.shape, args.frames, c, seed=seed, progress=False)


def write_held_out_rows(args: argparse.Namespace, rows: list[dict]) -> None:
    """Write the rows of a held-out probe with its ``--shape`` and ``--frames`` to ``--json``."""
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"shape": args.shape, "frames": args.frames, "rows": rows})
    print(f"wrote {args.json}")


def _named_model(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(path)


def ideal_map_scores(acquisition, split_radius) -> tuple[LocalizationScores, PalaScores]:
    """Scores of the training targets themselves (a perfect network's 8x map) decoded with
    ``split_radius``: the ceiling the decoding puts on every network."""
    blocks = acquisition_blocks(acquisition, BLOCK_FRAMES)
    logits = (
        torch.where(blocks.targets.select([i]).dense(8) > 0, 50.0, -50.0)
        for i in range(blocks.inputs.shape[0])
    )
    positions, frames = decode_blocks(logits, blocks, 0.5, split_radius)
    return score_detections(acquisition, positions, frames, n_frames=scored_frames(blocks))


def score_methods(acquisition, models: dict) -> dict[str, tuple[LocalizationScores, PalaScores]]:
    """Localization and PALA scores of conventional ULM, of the ideal map (split and not) and of
    every network on ``acquisition`` (on a canal pair, with the gap)."""
    conventional = conventional_ulm(acquisition.iq, acquisition.pixel_size, acquisition.frame_rate)
    scores = {
        "conventional": score_detections(acquisition, conventional.positions, conventional.frames),
        "conventional tracked": score_detections(acquisition, *conventional.tracked()),
        "ideal map": ideal_map_scores(acquisition, TARGET_RADIUS),
        "ideal map, no split": ideal_map_scores(acquisition, None),
    }
    for name, model in models.items():
        scores[name] = evaluate_model(model, acquisition, BLOCK_FRAMES, progress=False)
    return scores


def with_gap(pala: PalaScores, gap: float) -> dict:
    """``pala`` as a dict, with the canal pair's ``gap`` and the global score that includes it."""
    row = asdict(pala)
    components = {**pala.components, **component_scores({"gap": gap})}
    return {**row, "gap": gap, "components": components, "global_score": global_score(components)}


def save_plot(rows: list[dict], title: str, path: Path) -> None:
    """Jaccard, RMSE and PALA's global score against concentration, one line per method (log
    concentration axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        style = {"linestyle": ":"} if method.startswith("ideal") else {"marker": "o"}
        values = {
            "jaccard": [r["jaccard"] for r in mine],
            "rmse": [r["rmse"] for r in mine],
            "global": [r["pala"]["global_score"] for r in mine],
        }
        for ax, key in zip(axes, values, strict=True):
            ax.plot([r["concentration"] for r in mine], values[key], label=method, **style)
    labels = ("Jaccard index", "RMSE (lambda), pairs within lambda/2", "PALA global score")
    for ax, label in zip(axes, labels, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bubbles per frame")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def load_models(args: argparse.Namespace) -> dict:
    """The networks of ``--model`` (default: the shipped one of ``--shape``'s dimensionality,
    recorded in ``args.model``; none with ``--no-network``), checked against ``--shape``."""
    if not args.model and not args.no_network:
        args.model = [("shipped", pretrained_ulm_path(len(args.shape)))]
    models = {name: load_model(path).model for name, path in args.model}
    shape = " ".join(map(str, args.shape))
    for name, model in models.items():
        model.net.config.check_data(
            (args.frames, *args.shape), BLOCK_FRAMES, f"--shape {shape} (network {name})"
        )
    return models


def _input_threshold(model) -> float | None:
    """The threshold on |x|^2 that selects a sparse network's input sites (None: dense or
    another sparsifier)."""
    sparsifier = model.sparsifier
    return sparsifier.value if sparsifier is not None and sparsifier.kind == "threshold" else None


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=_named_model,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="trained network (repeatable; default: the shipped network of --shape's "
        "dimensionality, named 'shipped')",
    )
    parser.add_argument(
        "--no-network",
        action="store_true",
        help="no network: only conventional ULM and the ideal maps",
    )
    parser.add_argument("--shape", type=int, nargs="+", default=[16, 16])
    parser.add_argument(
        "--frames",
        type=_frames,
        default=128,
        help=f"frames per simulation, a multiple of {BLOCK_FRAMES}",
    )
    parser.add_argument("--concentrations", type=float, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument(
        "--canal-frames",
        type=_frames,
        default=2048,
        help=f"frames of the canal pair (gap), a multiple of {BLOCK_FRAMES}",
    )
    parser.add_argument(
        "--canal-concentration", type=float, default=8.0, help="bubbles per frame in the canals"
    )
    parser.add_argument(
        "--quick", action="store_true", help="two concentrations, 32 frames, 512 canal frames"
    )
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
        args.canal_frames = 512
    if args.no_network and args.model:
        parser.error("--no-network and --model exclude each other")
    try:
        models = load_models(args)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if args.no_split:
        for model in models.values():
            model.split_radius = None
    for name, model in models.items():
        print(
            f"{name}: {model.kind} network, {len(model.history)} training steps, input sites "
            f"{_input_threshold(model)}, decoded at occupancy > {model.threshold}, split radius "
            f"{model.split_radius}, smoothing {model.smoothing}",
            flush=True,
        )
    canal_shape = [*args.shape[:-1], 2 * args.shape[-1]]
    canals = simulate_canal_pair(
        canal_shape, args.canal_frames, args.canal_concentration, seed=999, progress=False
    )
    canal_scores = {name: pala for name, (_, pala) in score_methods(canals, models).items()}
    gaps = {name: pala.gap for name, pala in canal_scores.items()}
    print(
        f"gap on the canal pair ({'x'.join(map(str, canal_shape))}, {args.canal_frames} frames, "
        f"{args.canal_concentration:g}/frame): "
        + ", ".join(f"{name} {gap:.3f}" for name, gap in gaps.items())
    )
    rows = []
    print(
        f"{'method':20s} {'conc':>6s} {'jaccard':>8s} {'rmse':>8s} {'mean err':>8s} "
        f"{'precision':>9s} {'recall':>7s} {'satur.':>7s} {'gap':>6s} {'global':>7s}"
    )
    for c in args.concentrations:
        acq = simulate_acquisition(
            args.shape, args.frames, c, seed=1000 + int(c), progress=False
        )  # seeds unused by the training files
        for name, (s, pala) in score_methods(acq, models).items():
            pala = with_gap(pala, gaps[name])
            rows.append({"method": name, "concentration": c, **asdict(s), "pala": pala})
            print(
                f"{name:20s} {c:6g} {s.jaccard:8.3f} {s.rmse:8.3f} {s.mean_error:8.3f} "
                f"{s.precision:9.3f} {s.recall:7.3f} {pala['saturation']:7.3f} "
                f"{pala['gap']:6.3f} {pala['global_score']:7.1f}",
                flush=True,
            )
    payload = {
        "shape": args.shape,
        "frames": args.frames,
        "rows": rows,
        "canals": {
            "shape": canal_shape,
            "frames": args.canal_frames,
            "concentration": args.canal_concentration,
            "seed": 999,
            "scores": {name: asdict(pala) for name, pala in canal_scores.items()},
        },
        "models": {
            name: {
                "file": str(path),
                "kind": models[name].kind,
                "steps": len(models[name].history),
                "threshold": models[name].threshold,
                "split_radius": models[name].split_radius,
                "input_threshold": _input_threshold(models[name]),
                "smoothing": None
                if models[name].smoothing is None
                else models[name].smoothing.to_dict(),
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
