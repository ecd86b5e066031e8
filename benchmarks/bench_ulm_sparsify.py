"""What sparsifying a ULM block keeps: fraction of true bubbles vs fraction of voxels.

Simulated 3D (32^3 x 512 frames) and 2D (64^2 x 512) blocks at several concentrations; for each
selector (normalized-power threshold over the block, top-k voxels per frame, top-k per 8^ndim
tile, and the sparse network's own input threshold: |x|^2 > t on the network input of 16-frame
blocks, see ``blockrecon.ulm.blocks.iq_channels``) the fraction of voxels kept and the fraction of
true bubble positions whose nearest voxel, or any voxel within lambda/2, is kept.

    python benchmarks/bench_ulm_sparsify.py
    python benchmarks/bench_ulm_sparsify.py --quick    # 16^3, 32^2 and 16^2 x 64
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from blockrecon.cli.output import write_json
from blockrecon.ulm import bubble_retention, simulate_acquisition, threshold_mask, topk_mask
from blockrecon.ulm.blocks import iq_channels
from blockrecon.ulm.learned_mask import InputSparsifier

THRESHOLDS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.25)
TOPK_PER_FRAME = (16, 64, 256)
TOPK_PER_TILE = (1, 4, 16)
TILE = 8
NETWORK_THRESHOLDS = (0.003, 0.01, 0.03, 0.1, 0.25)
NETWORK_BLOCK_FRAMES = 16


def network_input_mask(iq: torch.Tensor, threshold: float) -> torch.Tensor:
    """Sites the sparse network keeps with ``InputSparsifier("threshold", threshold)`` on the
    normalized input of consecutive 16-frame blocks (a short tail: none)."""
    used = iq.shape[0] // NETWORK_BLOCK_FRAMES * NETWORK_BLOCK_FRAMES
    blocks = iq[:used].reshape(-1, NETWORK_BLOCK_FRAMES, *iq.shape[1:])
    keep = torch.zeros(iq.shape, dtype=torch.bool)
    keep[:used] = (
        InputSparsifier("threshold", threshold)
        .keep(iq_channels(blocks))
        .reshape(used, *iq.shape[1:])
    )
    return keep


def selectors(ndim: int):
    for t in THRESHOLDS:
        yield f"threshold {t}", lambda iq, t=t: threshold_mask(iq, t)
    for k in TOPK_PER_FRAME:
        yield f"top-{k} per frame", lambda iq, k=k: topk_mask(iq, k)
    for k in TOPK_PER_TILE:
        yield (
            f"top-{k} per {TILE}^{ndim} tile",
            lambda iq, k=k: topk_mask(iq, k, block_shape=(TILE,) * ndim),
        )
    for t in NETWORK_THRESHOLDS:
        yield f"network |x|^2 > {t}", lambda iq, t=t: network_input_mask(iq, t)


def run(shape, n_frames, concentrations, seed, snr_db):
    rows = []
    for concentration in concentrations:
        acq = simulate_acquisition(
            shape, n_frames, concentration, seed=seed, snr_db=snr_db, progress=False
        )
        for name, select in selectors(len(shape)):
            mask = select(acq.iq)
            nearest = bubble_retention(mask, acq.positions, acq.frames, acq.pixel_size)
            within = bubble_retention(mask, acq.positions, acq.frames, acq.pixel_size, radius=0.5)
            rows.append(
                {
                    "ndim": len(shape),
                    "shape": list(shape),
                    "n_frames": n_frames,
                    "concentration": concentration,
                    "selector": name,
                    "voxels_kept": nearest.voxels_kept,
                    "bubbles_kept_nearest_voxel": nearest.bubbles_kept,
                    "bubbles_kept_within_half_lambda": within.bubbles_kept,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr-db", type=float, default=30.0)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "bench_ulm_sparsify.json"
    )
    args = parser.parse_args()
    if args.quick:
        blocks, n_frames, concentrations = ((16, 16, 16), (32, 32), (16, 16)), 64, (5, 40)
    else:
        blocks, n_frames, concentrations = ((32, 32, 32), (64, 64)), 512, (10, 40, 160)
    rows = []
    for shape in blocks:
        rows += run(shape, n_frames, concentrations, args.seed, args.snr_db)

    print(
        f"{'block':>16} {'bubbles/frame':>13} {'selector':>24} {'voxels kept':>11} "
        f"{'bubbles kept (voxel)':>20} {'(lambda/2)':>10}"
    )
    for r in rows:
        block = "x".join(map(str, r["shape"])) + f"x{r['n_frames']}"
        print(
            f"{block:>16} {r['concentration']:>13} {r['selector']:>24} "
            f"{r['voxels_kept']:>11.4f} {r['bubbles_kept_nearest_voxel']:>20.3f} "
            f"{r['bubbles_kept_within_half_lambda']:>10.3f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"seed": args.seed, "snr_db": args.snr_db, "rows": rows}
    write_json(args.json, payload)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
