"""Memory of one regularizer training step vs patch size: block-wise against full backprop.

A step is forward + backward of the 5-layer, 32-channel valid ResNet3d on a complex volume
(relative-L2-like loss ``|y|^2`` summed), block-wise with checkpointed patches of each core
size, or on the full (once-padded) volume. Two measures per configuration:

* saved bytes: peak live tensor bytes (:func:`blockrecon.memory.saved_bytes`) counted on the meta
  device, which gives the same count as running on CPU (tested) without the compute;
* peak RSS: high-water mark above the baseline in a fresh process after a warm-up step
  (:func:`blockrecon.memory.peak_rss`), real CPU compute.

Usage: python benchmarks/bench_memory.py [--quick] [--no-rss] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from blockrecon.blockwise import BlockwiseRegularizer, apply_full
from blockrecon.cli.output import write_json
from blockrecon.memory import blockwise_step_bytes, estimate_full_backprop_bytes, peak_rss
from blockrecon.memory_report import MIB, PatchCurve, plot_patch_memory
from blockrecon.nn import ResNet3d


def _step(volume: int, patch: int | None, threads: int) -> None:
    """One forward+backward on CPU (runs in the measuring process)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ResNet3d()
    x = torch.randn(1, volume, volume, volume, dtype=torch.complex64, requires_grad=True)
    y = apply_full(net, x) if patch is None else BlockwiseRegularizer(net, patch)(x)
    y.abs().pow(2).sum().backward()


def _saved(volume: int, patch: int | None) -> int:
    net = ResNet3d()
    if patch is None:
        return estimate_full_backprop_bytes(net, (1, 2) + (volume + 2 * net.margin,) * 3)
    return blockwise_step_bytes(net, (volume,) * 3, patch)


def _plot(rows: list[dict], path: Path) -> None:
    """Saved bytes against patch size, one curve per volume, full backprop dashed."""
    curves = []
    for volume in sorted({r["volume"] for r in rows}):
        sel = [r for r in rows if r["volume"] == volume and r["patch"] != "full"]
        full = next(r for r in rows if r["volume"] == volume and r["patch"] == "full")
        curves.append(
            PatchCurve(
                f"{volume}^3 block-wise",
                [r["patch"] for r in sel],
                [r["saved_mib"] for r in sel],
                f"{volume}^3 full",
                full["saved_mib"],
            )
        )
    plot_patch_memory(curves, path, "saved bytes (MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32^3, patches 16 and full")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS runs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_memory.json"))
    args = parser.parse_args()
    volumes, patches = ((32,), (16, None)) if args.quick else ((64, 96), (16, 24, 32, 48, None))
    rows = []
    header = ("volume", "patch", "saved MiB", "x full", "RSS MiB", "x full")
    print("{:>7} {:>6} {:>10} {:>7} {:>8} {:>7}".format(*header))
    for volume in volumes:
        results = [
            (
                p,
                _saved(volume, p),
                None if args.no_rss else peak_rss(_step, volume, p, args.threads).increase,
            )
            for p in patches
        ]
        full_saved, full_rss = results[-1][1], results[-1][2]
        for patch, saved, rss in results:
            row = {
                "volume": volume,
                "patch": patch or "full",
                "saved_mib": saved / MIB,
                "saved_over_full": saved / full_saved,
                "rss_mib": None if rss is None else rss / MIB,
                "rss_over_full": None if rss is None else rss / full_rss,
            }
            rows.append(row)
            rss_txt = "-" if rss is None else f"{row['rss_mib']:8.1f} {row['rss_over_full']:7.3f}"
            print(
                f"{volume:>7} {row['patch']!s:>6} {row['saved_mib']:10.1f} "
                f"{row['saved_over_full']:7.3f} {rss_txt}",
                flush=True,
            )
    meta = {
        "network": "ResNet3d(width=32, n_layers=5, valid)",
        "threads": args.threads,
        "saved_bytes": "peak live tensor bytes on the meta device",
        "rss": "VmHWM - VmRSS after warm-up, fresh process, MALLOC_MMAP_THRESHOLD_=65536",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"meta": meta, "rows": rows})
    _plot(rows, args.json.with_suffix(".png"))
    print(f"wrote {args.json} and {args.json.with_suffix('.png')}")


if __name__ == "__main__":
    main()
