"""Submanifold sparse conv vs dense conv3d: forward+backward time and memory.

Case: 16 -> 16 channels, 3x3x3 kernel, batch 1, N^3 grid (N = 128), random active sites at
1%, 5% and 20% density, input features requiring grad. Each case runs in a fresh subprocess
(MALLOC_MMAP_THRESHOLD_=65536): build input (and, for sparse, the kernel map, timed apart),
one warm-up step, reset the RSS high-water mark (write 5 to /proc/self/clear_refs), one timed
step. Memory columns:

- live MiB: saved-for-backward bytes (once per storage, saved_tensors_hooks) + output
  + kernel map indices: what the step keeps alive between forward and backward;
- dRSS MiB: VmHWM during the timed step minus VmRSS at the reset (inputs, weights and the
  kernel map were already resident), i.e. peak process memory the step itself added.

Usage: python benchmarks/bench_sparse.py [--quick] [--threads T] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from blockrecon.cli.output import write_json

MIB = 2**20
CHANNELS = 16


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _saved_bytes_hooks():
    import torch

    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), storages


def _make_case(size: int, density: float | None):
    """(step function, map bytes, map build seconds, sites) for one case."""
    import torch

    from blockrecon.sparse import SparseConv, SparseTensor

    gen = torch.Generator().manual_seed(0)
    if density is None:
        x = torch.randn(1, CHANNELS, size, size, size, generator=gen, requires_grad=True)
        weight = torch.randn(CHANNELS, CHANNELS, 3, 3, 3, generator=gen, requires_grad=True)
        return (lambda: torch.nn.functional.conv3d(x, weight, padding=1)), 0, 0.0, size**3
    mask = torch.rand(1, size, size, size, generator=gen) < density
    coords = mask.nonzero()
    feats = torch.randn(coords.shape[0], CHANNELS, generator=gen, requires_grad=True)
    x = SparseTensor(coords, feats, (size,) * 3)
    layer = SparseConv(CHANNELS, CHANNELS, 3, bias=False)
    start = time.perf_counter()
    kmap = layer.kernel_map(x)
    build = time.perf_counter() - start
    return (lambda: layer(x).feats), kmap.nbytes, build, x.num_sites


def worker(size: int, density: float | None) -> dict:
    """Run one case in this (fresh) process and return its measurements."""
    step, map_bytes, map_seconds, sites = _make_case(size, density)
    step().sum().backward()  # warm-up (oneDNN/allocator first-call buffers)
    Path("/proc/self/clear_refs").write_text("5")
    rss_before = _status_kib("VmRSS")
    hooks, storages = _saved_bytes_hooks()
    start = time.perf_counter()
    with hooks:
        out = step()
    out.sum().backward()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    live = sum(storages.values()) + out.untyped_storage().nbytes() + map_bytes
    return {
        "case": "dense" if density is None else "sparse",
        "density": density,
        "sites": sites,
        "fwd_bwd_s": seconds,
        "map_build_s": map_seconds,
        "live_mib": live / MIB,
        "map_mib": map_bytes / MIB,
        "drss_mib": (peak - rss_before) / 1024,
        "vmhwm_mib": peak / 1024,
    }


def _run_case(size: int, density: float | None, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, __file__, "--worker", "--size", str(size), "--threads", str(threads)]
    if density is not None:
        cmd += ["--density", str(density)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {density} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict], dense: dict) -> str:
    head = (
        f"{'case':<14}{'sites':>10}{'fwd+bwd s':>11}{'map s':>8}{'live MiB':>10}"
        f"{'dRSS MiB':>10}{'speedup':>9}{'live x':>8}{'dRSS x':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        name = "dense conv3d" if r["density"] is None else f"sparse {r['density']:.0%}"
        lines.append(
            f"{name:<14}{r['sites']:>10}{r['fwd_bwd_s']:>11.3f}{r['map_build_s']:>8.3f}"
            f"{r['live_mib']:>10.1f}{r['drss_mib']:>10.1f}"
            f"{dense['fwd_bwd_s'] / r['fwd_bwd_s']:>9.1f}"
            f"{dense['live_mib'] / r['live_mib']:>8.1f}"
            f"{dense['drss_mib'] / max(r['drss_mib'], 1e-3):>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="grid edge N (default 128)")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--quick", action="store_true", help="small smoke run (32^3)")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "bench_sparse.json"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--density", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.size, args.density)))
        return 0
    size = 32 if args.quick else args.size
    dense = _run_case(size, None, args.threads)
    rows = [dense] + [_run_case(size, d, args.threads) for d in args.densities]
    print(
        f"submanifold conv {CHANNELS}->{CHANNELS}, 3x3x3, {size}^3, batch 1, float32, "
        f"CPU, {torch.get_num_threads()} threads; one timed step after a warm-up, "
        f"each case in a fresh process"
    )
    print(
        "live = saved-for-backward (per storage) + output + kernel map; "
        "dRSS = VmHWM - VmRSS at reset (MALLOC_MMAP_THRESHOLD_=65536); x = dense / case"
    )
    print(_table(rows, dense))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"size": size, "channels": CHANNELS, "rows": rows})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
