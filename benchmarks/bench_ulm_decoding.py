"""Decoding a ULM network's 8x occupancy with and without Gaussian smoothing, per concentration.

The network runs once per held-out simulation (those of ``bench_ulm_accuracy.py``, seed
1000 + c); its 8x maps are decoded (:func:`blockrecon.ulm.decode.decode_occupancy`) at each
``SIGMA@THRESHOLD`` variant (SIGMA: the smoothing's standard deviation in lambda, 0 for none;
THRESHOLD: the occupancy a smoothed cell must pass) and scored by PALA's rules. The table gives
detections per frame (observable without the truth), Jaccard, precision and recall.

    python benchmarks/bench_ulm_decoding.py --shape 32 32 32 --frames 64 \\
        --concentrations 4 38 76 152 303 607 1214
"""

import argparse
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
from blockrecon.ulm.evaluation import NETWORK_SCALE, score_detections, scored_frames

RESULTS = Path(__file__).parent / "results"
#: Default variants: none at the model's threshold, then 0.7, 1 and 1.5 fine cells at lambda/2
#: pixels (lambda/16 cells) at the thresholds that suited each in probes.
VARIANTS = ("0@model", "0.044@0.005", "0.0625@0.002", "0.094@0.001")


def _variant(text: str) -> tuple[float, str]:
    sigma, sep, threshold = text.partition("@")
    try:
        if not sep or float(sigma) < 0 or (threshold != "model" and not 0 < float(threshold) < 1):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SIGMA@THRESHOLD (SIGMA >= 0 lambda, THRESHOLD in (0, 1) or 'model'), "
            f"got {text!r}"
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
    for sigma, threshold in variants:
        found = [
            decode_occupancy(
                logits,
                blocks.pixel_size,
                NETWORK_SCALE,
                model.threshold if threshold == "model" else float(threshold),
                first_frames=blocks.first_frames[i : i + 1],
                split_radius=model.split_radius,
                smoothing=sigma or None,
            )
            for i, logits in enumerate(maps)
        ]
        positions = torch.cat([f.positions for f in found])
        frames = torch.cat([f.frames for f in found])
        scores, _ = score_detections(acq, positions, frames, n_frames=n_frames)
        rows.append(
            {
                "smoothing": sigma,
                "threshold": model.threshold if threshold == "model" else float(threshold),
                "detections_per_frame": len(frames) / n_frames,
                "jaccard": scores.jaccard,
                "precision": scores.precision,
                "recall": scores.recall,
            }
        )
    return rows


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_arguments(parser, [4, 38, 76, 152, 303, 607, 1214])
    parser.add_argument(
        "--variants", type=_variant, nargs="+", default=list(map(_variant, VARIANTS))
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_decoding.json")
    args = parser.parse_args()
    model = held_out_network(args)
    print(
        f"{'conc':>5s} | " + " | ".join(f"{s:g}@{t}: det/frame J / P / R" for s, t in args.variants)
    )
    table = []
    for c, acq in held_out_simulations(args):
        rows = decoded_scores(model, acq, args.variants)
        table += [{"concentration": c, **row} for row in rows]
        cells = [
            f"{r['detections_per_frame']:.0f} {r['jaccard']:.3f} / {r['precision']:.3f} / "
            f"{r['recall']:.3f}"
            for r in rows
        ]
        print(f"{c:5g} | " + " | ".join(cells), flush=True)
    write_held_out_rows(args, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
