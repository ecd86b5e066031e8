"""Decoding a ULM network's 8x occupancy with and without Gaussian smoothing, per concentration.

The network runs once per held-out simulation (those of ``bench_ulm_accuracy.py``, seed
1000 + c; ``--seeds S`` for S + c), at each input threshold asked for
(``--input-thresholds``; default the model's); its 8x maps are decoded
(:func:`blockrecon.ulm.decode.decode_occupancy`) at each variant:

* ``model``: the model's own decoding (its threshold, and its gated smoothing of the blocks
  with few detections);
* ``model:MERGE``: the same with the merge radius of its gated smoothing set to MERGE lambda
  (0: no merging), merging where the model's merge gate lets it;
* ``SIGMA@THRESHOLD``: SIGMA the smoothing's standard deviation in lambda (0 for none),
  applied to every block; THRESHOLD the occupancy a cell must pass (``model``: the model's);

and scored by PALA's rules. The table gives detections per frame (observable without the
truth), Jaccard, precision and recall; the JSON also the seconds each decoding took.

    python benchmarks/bench_ulm_decoding.py --shape 32 32 32 --frames 64 \\
        --concentrations 4 38 76 152 303 607 1214 --input-thresholds 0.01 0.0025
"""

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from bench_ulm_accuracy import (
    BLOCK_FRAMES,
    add_held_out_arguments,
    held_out_network,
    held_out_simulations,
    write_held_out_rows,
)

from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.decode import decode_occupancy
from blockrecon.ulm.evaluation import (
    NETWORK_SCALE,
    decode_blocks,
    score_detections,
    scored_frames,
)

RESULTS = Path(__file__).parent / "results"
#: Default variants: none at the model's threshold, then 0.7, 1 and 1.5 fine cells at lambda/2
#: pixels (lambda/16 cells) at the thresholds that suited each in probes.
VARIANTS = ("model", "0@model", "0.0625@0.002", "0.094@0.001")


def _variant(text: str) -> tuple[float, str] | tuple[str, float] | str:
    if text == "model":
        return text
    if text.startswith("model:"):
        try:
            merge = float(text.removeprefix("model:"))
            if merge < 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected model:MERGE with MERGE >= 0 lambda, got {text!r}"
            ) from None
        return "model", merge
    sigma, sep, threshold = text.partition("@")
    try:
        if not sep or float(sigma) < 0 or (threshold != "model" and not 0 < float(threshold) < 1):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected 'model' or SIGMA@THRESHOLD (SIGMA >= 0 lambda, THRESHOLD in (0, 1) or "
            f"'model'), got {text!r}"
        ) from None
    return float(sigma), threshold


def decoded_scores(model, acq, variants) -> list[dict]:
    """One row per variant: detections per frame, Jaccard, precision, recall."""
    blocks = acquisition_blocks(acq, BLOCK_FRAMES)
    model.net.eval()
    with torch.no_grad():
        maps = [model(blocks.inputs[i : i + 1])[NETWORK_SCALE] for i in range(len(blocks.inputs))]
    n_frames = scored_frames(blocks)
    rows = []
    for variant in variants:
        start = time.perf_counter()
        if variant == "model" or variant[0] == "model":
            smoothing = model.smoothing
            if variant != "model":
                smoothing = dataclasses.replace(smoothing, merge=variant[1])
            positions, frames = decode_blocks(
                maps, blocks, model.threshold, model.split_radius, smoothing
            )
            sigma, threshold = _name(variant), model.threshold
        else:
            sigma, threshold = variant
            threshold = model.threshold if threshold == "model" else float(threshold)
            found = [
                decode_occupancy(
                    logits,
                    blocks.pixel_size,
                    NETWORK_SCALE,
                    threshold,
                    first_frames=blocks.first_frames[i : i + 1],
                    split_radius=model.split_radius,
                    smoothing=sigma or None,
                )
                for i, logits in enumerate(maps)
            ]
            positions = torch.cat([f.positions for f in found])
            frames = torch.cat([f.frames for f in found])
        seconds = time.perf_counter() - start
        scores, _ = score_detections(acq, positions, frames, n_frames=n_frames)
        rows.append(
            {
                "input_threshold": model.sparsifier.value,
                "smoothing": sigma,
                "threshold": threshold,
                "detections_per_frame": len(frames) / n_frames,
                "jaccard": scores.jaccard,
                "precision": scores.precision,
                "recall": scores.recall,
                "decode_seconds": seconds,
            }
        )
    return rows


def _name(variant) -> str:
    if variant == "model":
        return variant
    if variant[0] == "model":
        return f"model:{variant[1]:g}"
    return f"{variant[0]:g}@{variant[1]}"


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_arguments(parser, [4, 38, 76, 152, 303, 607, 1214])
    parser.add_argument(
        "--variants", type=_variant, nargs="+", default=list(map(_variant, VARIANTS))
    )
    parser.add_argument(
        "--input-thresholds",
        type=float,
        nargs="+",
        default=None,
        help="thresholds on |x|^2 of the normalized block that select the network's input "
        "sites (default: the model's)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_decoding.json")
    args = parser.parse_args()
    model = held_out_network(args)
    if model.sparsifier is None or model.sparsifier.kind != "threshold":
        parser.error("the network must be sparse with a threshold sparsifier")
    if model.smoothing is None and any(v != "model" and v[0] == "model" for v in args.variants):
        parser.error("model:MERGE needs a model with gated smoothing")
    if args.input_thresholds is not None and min(args.input_thresholds) <= 0:
        parser.error("--input-thresholds must be > 0")
    inputs = args.input_thresholds or [model.sparsifier.value]
    names = " | ".join(f"{_name(v)}: det/frame J / P / R" for v in args.variants)
    print(f"{'conc':>5s} {'input':>7s} | {names}")
    table = []
    for c, acq in held_out_simulations(args):
        for value in inputs:
            model.sparsifier.value = value
            rows = decoded_scores(model, acq, args.variants)
            table += [{"concentration": c, **row} for row in rows]
            cells = [
                f"{r['detections_per_frame']:.0f} {r['jaccard']:.3f} / {r['precision']:.3f} / "
                f"{r['recall']:.3f}"
                for r in rows
            ]
            print(f"{c:5g} {value:7g} | " + " | ".join(cells), flush=True)
    write_held_out_rows(args, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
