"""Conventional ULM against bubble concentration on simulated 2D blocks (PALA metrics).

For each concentration (mean bubbles in the field of view per frame) one acquisition is
simulated (with tissue clutter, removed by an SVD filter) and localized with weighted centroid
and radial symmetry; precision, recall, Jaccard and RMSE (lambda) are computed per frame as in
PALA (TP within lambda/4, RMSE over pairs within lambda/2), for all localizations and for those
kept by tracking.

    python benchmarks/bench_ulm_classic.py            # 64x64 x 512 frames
    python benchmarks/bench_ulm_classic.py --quick    # 32x32 x 128 frames
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from blockrecon.cli.output import write_json
from blockrecon.ulm import conventional_ulm, localization_scores, simulate_acquisition

METHODS = ("weighted_centroid", "radial_symmetry")


def run(shape, n_frames, concentrations, seed, snr_db, clutter_db, svd_components):
    rows = []
    for concentration in concentrations:
        acq = simulate_acquisition(
            shape,
            n_frames,
            concentration,
            seed=seed,
            snr_db=snr_db,
            clutter_db=clutter_db,
            progress=False,
        )
        area = 1.0
        for size, pixel in zip(shape, acq.pixel_size, strict=True):
            area *= size * pixel
        for method in METHODS:
            start = time.perf_counter()
            result = conventional_ulm(
                acq.iq, acq.pixel_size, acq.frame_rate, svd_components=svd_components, method=method
            )
            seconds = time.perf_counter() - start
            scores = localization_scores(acq.positions, acq.frames, result.positions, result.frames)
            tracked = localization_scores(acq.positions, acq.frames, *result.tracked())
            rows.append(
                {
                    "concentration": concentration,
                    "bubbles_per_lambda2": len(acq.frames) / n_frames / area,
                    "method": method,
                    "precision": scores.precision,
                    "recall": scores.recall,
                    "jaccard": scores.jaccard,
                    "rmse_lambda": scores.rmse,
                    "tracked_jaccard": tracked.jaccard,
                    "tracked_rmse_lambda": tracked.rmse,
                    "seconds": seconds,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr-db", type=float, default=30.0)
    parser.add_argument("--clutter-db", type=float, default=20.0)
    parser.add_argument("--svd-components", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "bench_ulm_classic.json"
    )
    args = parser.parse_args()
    if args.quick:
        shape, n_frames, concentrations = (32, 32), 128, (2, 20, 80)
    else:
        shape, n_frames, concentrations = (64, 64), 512, (5, 10, 20, 40, 80, 160, 320)
    rows = run(
        shape,
        n_frames,
        concentrations,
        args.seed,
        args.snr_db,
        args.clutter_db,
        args.svd_components,
    )

    print(
        f"2D {shape[0]}x{shape[1]} (lambda/2 pixels) x {n_frames} frames, SNR "
        f"{args.snr_db} dB, clutter {args.clutter_db} dB, SVD {args.svd_components}"
    )
    header = (
        f"{'bubbles/frame':>13} {'per lambda^2':>12} {'method':>17} {'precision':>9} "
        f"{'recall':>6} {'Jaccard':>7} {'RMSE':>6} {'J tracked':>9} {'s':>5}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['concentration']:>13} {r['bubbles_per_lambda2']:>12.4f} {r['method']:>17} "
            f"{r['precision']:>9.3f} {r['recall']:>6.3f} {r['jaccard']:>7.3f} "
            f"{r['rmse_lambda']:>6.3f} {r['tracked_jaccard']:>9.3f} {r['seconds']:>5.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "shape": shape,
        "n_frames": n_frames,
        "seed": args.seed,
        "snr_db": args.snr_db,
        "clutter_db": args.clutter_db,
        "svd_components": args.svd_components,
        "rows": rows,
    }
    write_json(args.json, payload)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
