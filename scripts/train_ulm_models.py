"""Train the ULM detection networks shipped as ``blockrecon/ulm/pretrained_ulm{2,3}d.pt``.

Reproducible from its seed on a CPU (2 threads: about 5 minutes for the 2D network, about
1 hour 45 minutes for the 3D one): the settings (:data:`SETTINGS`) are those of the best measured
figures of benchmarks/README.md ("ULM"). Both networks are sparse (a 2D dense one scored about
the same for several times the training time; no dense 3D network trains in an hour on a CPU):

* 2D: 16x16 fields at lambda/2 pixels, channels 8/16/32, fine tail 8, 3000 steps, lr 1e-2,
  batch 4; one simulation of 512 frames per concentration 2, 4, ..., 64 bubbles/frame;
* 3D: the source's 32^3 block at lambda/2 voxels, channels 16/32/64, fine tail 8, 1200 steps,
  lr 3e-3, batch 1 (a step at the highest concentration holds about 4 GiB); one simulation
  of 256 frames per concentration 4, 16 and 38, 76, ..., 1214 bubbles/frame (2, 4, ..., 64 on
  a 12^3 field scaled to the 32^3 volume; 4 adds blocks whose brightest bubble is dim, 16 the
  sparse end of the accuracy goal), with the
  target cells kept through pruning together with their neighbours within one cell
  (``keep_margin`` of :func:`blockrecon.ulm.training.train_ulm`: the fine heads learn to reject
  empty sites next to a bubble instead of painting every site they are given); trained with
  input sites |x|^2 > 0.01, then its decoding is calibrated on fresh simulations of 16 frames
  (one block) per concentration, seeds ``seed + 2000 + c`` (``fresh_calibration``: on its own
  training data the network finds fewer duplicates than on data it has not seen, and the
  calibration then merges too little): the input threshold (``input_thresholds``), the
  decoding threshold (``decode_thresholds``) and the smoothing and merging of blocks with few
  detections (:func:`blockrecon.ulm.evaluation.calibrate_smoothing`). Decoding a 32^3 block at
  1214 bubbles/frame with input sites above 0.0025 takes a minute, so the calibration grids
  are short.

Training data: simulations by :func:`blockrecon.ulm.simulate_acquisition` (random vessel trees,
SNR 30 dB), seeds ``seed + c``; training by :func:`blockrecon.ulm.run.train_model_file` (what
``blockrecon ulm train`` runs: 16-frame blocks, Adam with a cosine decay, multi-scale Dice plus
class-balanced cross-entropy, then the decoding threshold calibrated on the training data).
Held out: one simulation per concentration (128 frames in 2D, 64 in 3D), seeds ``seed + 1000 +
c`` (with seed 0 the held-out data of ``benchmarks/bench_ulm_accuracy.py``), scored for the
network and for
conventional ULM by the same PALA rules (:func:`blockrecon.ulm.evaluation.score_detections`:
TP within lambda/4, RMSE over pairs within lambda/2). The table is printed, written as JSON to
``benchmarks/results/ulm_pretrained_{2,3}d.json``, and stored with the settings, seed and
training time in the model file's metadata (``extra``, see
:func:`blockrecon.ulm.pretrained.load_pretrained_ulm`).

    python scripts/train_ulm_models.py                # both shipped models, 2 threads
    python scripts/train_ulm_models.py --dims 3       # only the 3D one
    python scripts/train_ulm_models.py --quick        # smoke run, writes under benchmarks/results
    python scripts/train_ulm_models.py --rescore      # recalibrate and score, no training
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from blockrecon.cli.output import write_json
from blockrecon.ulm import conventional_ulm, simulate_acquisition
from blockrecon.ulm.evaluation import (
    DECODE_THRESHOLDS,
    calibrate_smoothing,
    calibrate_threshold,
    evaluate_model,
    score_detections,
)
from blockrecon.ulm.learned_mask import INPUT_THRESHOLD, InputSparsifier
from blockrecon.ulm.nets import UlmNetConfig
from blockrecon.ulm.pretrained import PRETRAINED_FILES, pretrained_ulm_folder
from blockrecon.ulm.run import checkpoint_for, train_model_file
from blockrecon.ulm.training import build_model, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HELD_OUT_OFFSET = 1000
CALIBRATION_OFFSET = 2000
SCORES = ("jaccard", "precision", "recall", "rmse")

#: Settings of each shipped network, by number of spatial axes.
SETTINGS = {
    2: {
        "shape": [16, 16],
        "channels": [8, 16, 32],
        "fine_channels": 8,
        "steps": 3000,
        "lr": 1e-2,
    },
    3: {
        "shape": [32, 32, 32],
        "channels": [16, 32, 64],
        "fine_channels": 8,
        "steps": 1200,
        "lr": 3e-3,
        "keep_margin": 1,
        "batch_size": 1,
        "train_frames": 256,
        "calibration_frames": 16,
        "held_out_frames": 64,
        "concentrations": [4, 16, 38, 76, 152, 303, 607, 1214],
        "input_thresholds": [0.0025],
        "decode_thresholds": [0.01, 0.02, 0.05],
        "smoothing": True,
        "fresh_calibration": True,
    },
}
#: Settings both networks share.
COMMON = {
    "kind": "sparse",
    "sparsifier": ["threshold", INPUT_THRESHOLD],
    "batch_size": 4,
    "block_frames": 16,
    "train_frames": 512,
    "held_out_frames": 128,
    "concentrations": [2, 4, 8, 16, 32, 64],
    "snr_db": 30.0,
}
#: What ``--quick`` changes: a few steps on small data.
QUICK = {
    2: {"shape": [8, 8], "steps": 3},
    3: {"shape": [4, 4, 4], "steps": 2, "calibration_frames": 16},
    "common": {"train_frames": 32, "held_out_frames": 16, "concentrations": [4, 16]},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", choices=(2, 3), default=[2, 3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps of every network instead of its own (timing runs; with "
        "--out-dir, to leave the shipped files alone)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="folder of the model files (default: the package, blockrecon/ulm)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="folder of the JSON tables, the training checkpoint and the trained model "
        "before scoring",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its checkpoint"
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="do not train: calibrate the decoding threshold of the model files in OUT_DIR "
        "again and score them (after a change to decoding); their training metadata is kept",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run: models and JSON under RESULTS_DIR/ulm_models_quick",
    )
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--threads and --steps must be >= 1")
    if args.quick:
        args.results_dir = args.results_dir / "ulm_models_quick"
        args.out_dir = args.out_dir or args.results_dir
    args.out_dir = args.out_dir or pretrained_ulm_folder()
    return args


def settings_for(dims: int, quick: bool, steps: int | None = None) -> dict:
    """The training settings of the ``dims``-D network (:data:`SETTINGS`, :data:`COMMON`;
    :data:`QUICK` if ``quick``; ``steps`` if given)."""
    settings = {**COMMON, **SETTINGS[dims], "spatial_dims": dims}
    if quick:
        settings.update({**QUICK["common"], **QUICK[dims]})
    if steps is not None:
        settings["steps"] = steps
    return settings


def simulations(settings: dict, frames: int, seed: int) -> list:
    """One simulation per concentration of ``settings``, seed ``seed + c``."""
    return [
        simulate_acquisition(
            settings["shape"],
            frames,
            c,
            seed=seed + c,
            snr_db=settings["snr_db"],
            progress=False,
        )
        for c in settings["concentrations"]
    ]


def held_out_rows(model, settings: dict, seed: int) -> list[dict]:
    """Scores of the network and of conventional ULM on each held-out simulation (rows of
    method, concentration and :class:`~blockrecon.ulm.metrics.LocalizationScores`)."""
    rows = []
    frames = settings["held_out_frames"]
    for c, acq in zip(
        settings["concentrations"],
        simulations(settings, frames, seed + HELD_OUT_OFFSET),
        strict=True,
    ):
        network, _ = evaluate_model(model, acq, settings["block_frames"], progress=False)
        conv = conventional_ulm(acq.iq, acq.pixel_size, acq.frame_rate)
        conventional, _ = score_detections(acq, conv.positions, conv.frames)
        for method, scores in (("network", network), ("conventional", conventional)):
            rows.append({"method": method, "concentration": c, **asdict(scores)})
    return rows


def format_table(rows: list[dict]) -> str:
    """Per concentration, Jaccard / precision / recall / RMSE of the network and of
    conventional ULM."""
    lines = [
        f"{'bubbles/frame':>13s}  {'network J / P / R / RMSE':>29s}  "
        f"{'conventional J / P / R / RMSE':>29s}"
    ]
    by = {(r["concentration"], r["method"]): r for r in rows}
    for c in dict.fromkeys(r["concentration"] for r in rows):
        cells = [
            " / ".join(f"{by[c, method][k]:.3f}" for k in SCORES)
            for method in ("network", "conventional")
        ]
        lines.append(f"{c:13g}  {cells[0]:>29s}  {cells[1]:>29s}")
    return "\n".join(lines)


def train(dims: int, settings: dict, args: argparse.Namespace) -> tuple:
    """Train and calibrate the ``dims``-D network: ``(model, training metadata)`` (final loss,
    training Jaccard per threshold, training seconds, threads)."""
    trained = args.results_dir / f"ulm{dims}d_trained.pt"
    checkpoint = checkpoint_for(trained, None, args.resume)
    config = UlmNetConfig(dims, tuple(settings["channels"]), settings["fine_channels"])
    acquisitions = simulations(settings, settings["train_frames"], args.seed)
    print(
        f"{dims}D: {settings['kind']} network {settings['channels']} / "
        f"{settings['fine_channels']}, {settings['steps']} steps on "
        f"{len(acquisitions)} simulations of {'x'.join(map(str, settings['shape']))} x "
        f"{settings['train_frames']} frames",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    run = train_model_file(
        trained,
        acquisitions,
        lambda blocks: build_model(
            settings["kind"], config, InputSparsifier(*settings["sparsifier"])
        ),
        block_frames=settings["block_frames"],
        steps=settings["steps"],
        checkpoint=checkpoint,
        seed=args.seed,
        resume=args.resume,
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        keep_margin=settings.get("keep_margin", 0),
        calibration_frames=settings.get("calibration_frames"),
    )
    training = {
        "train_seconds": round(time.perf_counter() - start, 1),
        "threads": args.threads,
        "final_loss": sum(run.losses[-20:]) / len(run.losses[-20:]),
    }
    calibration = calibration_data(settings, args.seed, acquisitions)
    return run.model, {**training, **calibrate_decoding(run.model, settings, *calibration)}


def calibration_data(settings: dict, seed: int, training: list | None = None) -> tuple:
    """``(acquisitions, description)`` the decoding is calibrated on: with
    ``settings["fresh_calibration"]`` one new simulation of ``calibration_frames`` frames per
    concentration, seeds ``seed + CALIBRATION_OFFSET + c``; otherwise the first
    ``calibration_frames`` frames (default all) of each training simulation (``training``, or
    simulated again)."""
    frames = settings.get("calibration_frames")
    if settings.get("fresh_calibration"):
        offset = seed + CALIBRATION_OFFSET
        return simulations(settings, frames, offset), f"{offset} + c, {frames} frames"
    training = training or simulations(settings, settings["train_frames"], seed)
    return [a.first_frames(frames) if frames else a for a in training], "training data"


def calibrate_decoding(model, settings: dict, calibration: list, description: str) -> dict:
    """Choose ``model``'s input threshold (of ``settings["input_thresholds"]``, default the
    trained one), decoding threshold and, with ``settings["smoothing"]``, gated smoothing
    (:func:`blockrecon.ulm.evaluation.calibrate_smoothing`) of largest Jaccard on the
    ``calibration`` acquisitions (see :func:`calibration_data`, whose ``description`` is
    stored); returns the metadata of the choice: ``training_jaccard`` per decoding threshold at
    the chosen input threshold, ``calibration``, one row per input threshold, and
    ``calibration_data``."""
    rows, best = [], None
    for value in settings.get("input_thresholds", [model.sparsifier.value]):
        model.sparsifier.value = value
        jaccard = calibrate_threshold(
            model,
            calibration,
            settings["block_frames"],
            settings.get("decode_thresholds", DECODE_THRESHOLDS),
            progress=False,
        )
        model.smoothing, score = None, jaccard[model.threshold]
        if settings.get("smoothing"):
            smoothed = calibrate_smoothing(
                model, calibration, settings["block_frames"], progress=False
            )
            score = smoothed[model.smoothing]
        smoothing = None if model.smoothing is None else model.smoothing.to_dict()
        rows.append(
            {
                "input_threshold": value,
                "threshold": model.threshold,
                "smoothing": smoothing,
                "jaccard": score,
            }
        )
        if best is None or score > best[0]:
            best = score, value, model.threshold, model.smoothing, jaccard
    _, model.sparsifier.value, model.threshold, model.smoothing, jaccard = best
    return {"training_jaccard": jaccard, "calibration": rows, "calibration_data": description}


def recalibrate(out: Path, settings: dict, args: argparse.Namespace) -> tuple:
    """The trained model of file ``out`` with its decoding calibrated again
    (:func:`calibration_data`), as :func:`train` returns it (the training figures from the
    file's metadata)."""
    if not out.is_file():
        raise SystemExit(f"--rescore: no model file {out} (train it first)")
    loaded = load_model(out)
    kept = {k: loaded.extra[k] for k in ("train_seconds", "threads", "final_loss")}
    calibration = calibration_data(settings, args.seed)
    return loaded.model, {**kept, **calibrate_decoding(loaded.model, settings, *calibration)}


def train_one(dims: int, args: argparse.Namespace) -> dict:
    """Train (or, with ``--rescore``, recalibrate), calibrate and score the ``dims``-D network
    and write its model file with its metadata; returns the report written as JSON."""
    settings = settings_for(dims, args.quick, args.steps)
    out = args.out_dir / PRETRAINED_FILES[dims]
    if args.rescore:
        model, training = recalibrate(out, settings, args)
    else:
        model, training = train(dims, settings, args)
    start = time.perf_counter()
    rows = held_out_rows(model, settings, args.seed)
    score_seconds = time.perf_counter() - start
    print(
        f"\n{dims}D held out ({'x'.join(map(str, settings['shape']))} x "
        f"{settings['held_out_frames']} frames per concentration, seeds "
        f"{args.seed + HELD_OUT_OFFSET} + c); input threshold {model.sparsifier.value}, "
        f"threshold {model.threshold}, smoothing {model.smoothing}:"
    )
    print(format_table(rows), flush=True)
    means = {
        method: {
            k: sum(r[k] for r in rows if r["method"] == method) / len(settings["concentrations"])
            for k in SCORES
        }
        for method in ("network", "conventional")
    }
    metadata = {
        "seed": args.seed,
        "settings": settings,
        **training,
        "torch": str(torch.__version__),
        "held_out": {"seeds": f"{args.seed + HELD_OUT_OFFSET} + c", "rows": rows, "means": means},
        "script": "scripts/train_ulm_models.py" + (" --quick" if args.quick else ""),
    }
    save_model(out, model, metadata)
    report = {**metadata, "score_seconds": round(score_seconds, 1), "model": str(out)}
    write_json(args.results_dir / f"ulm_pretrained_{dims}d.json", report)
    print(
        f"{dims}D: {'recalibrated' if args.rescore else 'trained and calibrated'} "
        f"(training {training['train_seconds']:.0f} s), scored in "
        f"{score_seconds:.0f} s; wrote {out} ({out.stat().st_size / 1e6:.2f} MB)",
        file=sys.stderr,
        flush=True,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for folder in (args.out_dir, args.results_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for dims in args.dims:
        train_one(dims, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
