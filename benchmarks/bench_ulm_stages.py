"""Where a ULM network loses bubbles: per-scale recall of its heads on held-out simulations.

For every head (scales 1, 2, 4, 8: grids 1x-8x finer in space) of each network, on the same
held-out data as ``bench_ulm_accuracy.py`` (seed 1000 + c): the sites it computed, the occupied
target cells (discs of radius lambda/8), the fraction of target cells reached (a site exists
there: the input sparsifier and the pruning of the coarser heads let it through), the fraction
whose occupancy passes 0.5 (what a sparse network keeps for the next stage), and the mean
occupancy at target cells and at the other computed sites. A dense network reaches every cell.

    python benchmarks/bench_ulm_stages.py --shape 12 12 12 --model sparse=s.pt [--model dense=d.pt]
"""

import argparse
from pathlib import Path

import torch
from bench_ulm_accuracy import BLOCK_FRAMES, _frames, _named_model

from blockrecon.cli.output import write_json
from blockrecon.sparse import SparseTensor
from blockrecon.ulm import simulate_acquisition
from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.training import load_model

RESULTS = Path(__file__).parent / "results"


def site_occupancy(logits) -> tuple[torch.Tensor, torch.Tensor]:
    """(linear keys of the computed sites of (B, T, *S), their occupancy) of one head's
    output: a SparseTensor (sparse network) or a dense (B, T, *S) tensor."""
    if isinstance(logits, SparseTensor):
        return logits.keys(), torch.sigmoid(logits.feats[:, 0])
    flat = logits.reshape(-1)
    return torch.arange(flat.numel()), torch.sigmoid(flat)


def stage_rows(model, blocks) -> list[dict]:
    """One row per head scale: sites, target cells, reached / kept fractions, occupancies."""
    model.net.eval()
    with torch.no_grad():
        outputs = model(blocks.inputs)
    rows = []
    for scale, logits in outputs.items():
        keys, occupancy = site_occupancy(logits)
        target = blocks.targets.keys[scale]
        on_target = torch.isin(keys, target)
        rows.append(
            {
                "scale": scale,
                "sites": int(keys.numel()),
                "target_cells": int(target.numel()),
                "reached": float(torch.isin(target, keys).float().mean()),
                "kept": float(torch.isin(target, keys[occupancy > 0.5]).float().mean()),
                "occupancy_target": float(occupancy[on_target].mean()),
                "occupancy_other": float(occupancy[~on_target].mean()),
            }
        )
    return rows


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=_named_model,
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="trained network (repeatable)",
    )
    parser.add_argument("--shape", type=int, nargs="+", default=[16, 16])
    parser.add_argument(
        "--frames",
        type=_frames,
        default=64,
        help=f"frames per simulation, a multiple of {BLOCK_FRAMES}",
    )
    parser.add_argument("--concentrations", type=float, nargs="+", default=[2, 16, 64])
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_stages.json")
    args = parser.parse_args()
    models = {name: load_model(path).model for name, path in args.model}
    rows = []
    print(
        f"{'method':16s} {'conc':>5s} {'scale':>5s} {'sites':>7s} {'targets':>7s} "
        f"{'reached':>7s} {'> 0.5':>6s} {'p target':>8s} {'p other':>7s}"
    )
    for c in args.concentrations:
        acq = simulate_acquisition(args.shape, args.frames, c, seed=1000 + int(c), progress=False)
        blocks = acquisition_blocks(acq, BLOCK_FRAMES)
        for name, model in models.items():
            for row in stage_rows(model, blocks):
                rows.append({"method": name, "concentration": c, **row})
                print(
                    f"{name:16s} {c:5g} {row['scale']:5d} {row['sites']:7d} "
                    f"{row['target_cells']:7d} {row['reached']:7.2f} {row['kept']:6.2f} "
                    f"{row['occupancy_target']:8.2f} {row['occupancy_other']:7.2f}"
                )
    payload = {
        "shape": args.shape,
        "frames": args.frames,
        "rows": rows,
        "models": {name: str(path) for name, path in args.model},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, payload)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
