"""Submanifold sparse conv vs dense conv3d: kernel map, forward+backward, and their sum.

Case: 16 -> 16 channels, 3x3x3 kernel, batch 1, N^3 grid (N = 128), random active sites at
1%, 5% and 20% density, input features and weight requiring grad. Every repeat draws a fresh
site set, so the kernel map (and the site index under it) is built anew and timed ("map"),
then one forward + backward is timed ("fwd+bwd"); dense ``conv3d`` forward + backward on the
full grid is timed in the same round. Rounds interleave all cases (dense first), after one
untimed warm-up round; the table gives medians over ``--repeats`` rounds and the load average
(1 min) before the first and after the last round.

Columns: map s, fwd+bwd s, total s (= map + fwd+bwd: a layer on a new site set), dense s,
ratio = dense / total, map % = map / fwd+bwd, live MiB = saved-for-backward (once per storage)
+ output + kernel map + site index: what the step keeps alive between forward and backward.

Usage: python benchmarks/bench_sparse.py [--quick] [--size N] [--repeats R] [--threads T]
    [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from blockrecon.cli.output import write_json
from blockrecon.sparse import SparseConv, SparseTensor

MIB = 2**20
CHANNELS = 16


def _saved_bytes_hooks():
    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), storages


def _index_bytes(x: SparseTensor) -> int:
    """Bytes of the site indexes (``blockrecon.sparse.site_index``: tables and padded keys)
    cached on ``x``'s sites; duck-typed, so that the script also times older code trees."""
    total = 0
    for value in x.cache.values():
        tables = ("padded_keys", "table", "rows_of", "occupied")
        for t in (getattr(value, name, None) for name in tables):
            if t is not None:
                total += t.numel() * t.element_size()
    return total


def sparse_round(size: int, density: float, layer: SparseConv, gen: torch.Generator) -> dict:
    """One fresh site set: build its map (timed), then one timed forward + backward."""
    mask = torch.rand(1, size, size, size, generator=gen) < density
    coords = mask.nonzero()
    feats = torch.randn(coords.shape[0], CHANNELS, generator=gen, requires_grad=True)
    x = SparseTensor(coords, feats, (size,) * 3)
    start = time.perf_counter()
    kmap = layer.kernel_map(x)
    map_s = time.perf_counter() - start
    hooks, storages = _saved_bytes_hooks()
    start = time.perf_counter()
    with hooks:
        out = layer(x).feats
    out.sum().backward()
    step_s = time.perf_counter() - start
    live = sum(storages.values()) + out.untyped_storage().nbytes() + kmap.nbytes
    live += _index_bytes(x)
    layer.weight.grad = None
    return {"sites": x.num_sites, "map_s": map_s, "fwd_bwd_s": step_s, "live_mib": live / MIB}


def dense_round(x: torch.Tensor, weight: torch.Tensor) -> dict:
    hooks, storages = _saved_bytes_hooks()
    start = time.perf_counter()
    with hooks:
        out = torch.nn.functional.conv3d(x, weight, padding=1)
    out.sum().backward()
    seconds = time.perf_counter() - start
    live = sum(storages.values()) + out.untyped_storage().nbytes()
    x.grad = weight.grad = None
    return {"fwd_bwd_s": seconds, "live_mib": live / MIB}


def run(size: int, densities: list[float], repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, CHANNELS, size, size, size, generator=gen, requires_grad=True)
    weight = torch.randn(CHANNELS, CHANNELS, 3, 3, 3, generator=gen, requires_grad=True)
    torch.manual_seed(0)
    layer = SparseConv(CHANNELS, CHANNELS, 3, bias=False)
    dense_runs: list[dict] = []
    sparse_runs: dict[float, list[dict]] = {d: [] for d in densities}
    load_before = os.getloadavg()[0]
    for round_index in range(repeats + 1):  # round 0: warm-up
        dense = dense_round(x, weight)
        sparse = {d: sparse_round(size, d, layer, gen) for d in densities}
        if round_index:
            dense_runs.append(dense)
            for d in densities:
                sparse_runs[d].append(sparse[d])
    load_after = os.getloadavg()[0]
    dense_s = statistics.median(r["fwd_bwd_s"] for r in dense_runs)
    rows = []
    for d in densities:
        runs = sparse_runs[d]
        map_s = statistics.median(r["map_s"] for r in runs)
        step_s = statistics.median(r["fwd_bwd_s"] for r in runs)
        total_s = statistics.median(r["map_s"] + r["fwd_bwd_s"] for r in runs)
        rows.append(
            {
                "density": d,
                "sites": int(statistics.median(r["sites"] for r in runs)),
                "map_s": map_s,
                "fwd_bwd_s": step_s,
                "total_s": total_s,
                "dense_s": dense_s,
                "ratio": dense_s / total_s,
                "map_fraction": map_s / step_s,
                "live_mib": statistics.median(r["live_mib"] for r in runs),
                "runs": runs,
            }
        )
    return {
        "size": size,
        "channels": CHANNELS,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": load_after,
        "dense": {
            "fwd_bwd_s": dense_s,
            "live_mib": dense_runs[0]["live_mib"],
            "runs": [r["fwd_bwd_s"] for r in dense_runs],
        },
        "rows": rows,
    }


def table(result: dict) -> str:
    head = (
        f"{'density':>8}{'sites':>10}{'map s':>9}{'fwd+bwd s':>11}{'total s':>9}"
        f"{'dense s':>9}{'ratio':>8}{'map %':>7}{'live MiB':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(
            f"{r['density']:>8.0%}{r['sites']:>10}{r['map_s']:>9.4f}{r['fwd_bwd_s']:>11.4f}"
            f"{r['total_s']:>9.4f}{r['dense_s']:>9.3f}{r['ratio']:>8.1f}"
            f"{100 * r['map_fraction']:>7.0f}{r['live_mib']:>10.1f}"
        )
    lines.append(f"dense conv3d live MiB: {result['dense']['live_mib']:.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="grid edge N (default 128)")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--quick", action="store_true", help="small smoke run (32^3, 2 rounds)")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "bench_sparse.json"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    size, repeats = (32, 2) if args.quick else (args.size, args.repeats)
    result = run(size, args.densities, repeats)
    print(
        f"submanifold conv {CHANNELS}->{CHANNELS}, 3x3x3, {size}^3, batch 1, float32, CPU, "
        f"{result['threads']} threads; medians of {repeats} interleaved rounds, a fresh site "
        f"set per round; load average {result['load_before']:.2f} before, "
        f"{result['load_after']:.2f} after"
    )
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, result)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
