"""One block-wise training step at the source's scale: peak memory and time against full backprop.

The problem is a 320x240x320 volume, 8 coils, 3D golden-means radial k-space 8-fold undersampled
(20106 spokes of 640 samples), and the 5-unroll network of :mod:`blockrecon.step_memory`
(valid ResNet3d regularizer, 5 layers x 64 channels unless ``--layers``/``--width``
say otherwise, on checkpointed ``--patch`` cores, gradient-step DC through the
Toeplitz normal, one coil at a time). Five 3x3x3 layers give the source's receptive field
of 11 voxels; 64 channels put full backpropagation above 100 GB, as the source reports for
its volumes (32 channels: about 70 GiB). Reported:

* meta estimates (nothing allocated): the block-wise step, with and without checkpointed
  unrolls, and full backpropagation; their ratio (goal: full / block-wise >= 50);
* the regularizer's own activation memory: one patch's forward and backward (the same at every
  volume), and the regularizer-only block-wise step at this volume and at half its size per
  axis, against full-volume backprop of the regularizer alone;
* unless ``--estimate-only``: one measured CPU step in a fresh process (peak RSS increase, peak
  live tensor bytes, wall time), with the data (k-space, maps, kernel) already in memory, and
  the wall time extrapolated linearly in voxels to 320x240x320;
* with ``--single-step``: instead, one step in this process without the warm-up step (half the
  time of a full-scale run): data build time, step time, peak live tensor bytes and this
  process's whole resident high-water mark, data included (what the machine must hold).

A full-scale CPU step is heavy on a small machine (FFTs of a 640x480x640 grid per coil and
unroll, and about 1e14 convolution FLOPs); run it at reduced scale with ``--shape`` and
``--spokes`` (``--quick``: 40x30x40) and read the extrapolated time.

Usage: python benchmarks/bench_source_scale.py [--quick] [--shape NZ NY NX] [--spokes S]
       [--patch P] [--estimate-only | --single-step] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from blockrecon.cli.output import write_json
from blockrecon.memory import (
    blockwise_step_bytes,
    estimate_full_backprop_bytes,
    rss_high_water_mark,
    saved_bytes,
)
from blockrecon.nn import ResNet3d
from blockrecon.step_memory import (
    StepProblem,
    build_inputs,
    build_model,
    data_bytes,
    estimate_step_bytes,
    measure_step,
    problem_dict,
    training_step,
)

SOURCE_SHAPE = (320, 240, 320)
GIB, MIB = 2**30, 2**20


def regularizer_rows(problem: StepProblem, patch: int) -> dict:
    """Regularizer-only memory (meta): one patch, block-wise and full, at two volume sizes."""
    net = ResNet3d(width=problem.width, n_layers=problem.n_layers)
    halo = 2 * net.margin
    rows = {
        "patch_activation_bytes": estimate_full_backprop_bytes(net, (1, 2) + (patch + halo,) * 3)
    }
    for label, shape in (
        ("volume", problem.shape),
        ("half_volume", tuple(max(patch, s // 2) for s in problem.shape)),
    ):
        rows[label] = {
            "shape": list(shape),
            "blockwise_bytes": blockwise_step_bytes(net, shape, patch),
            "full_bytes": estimate_full_backprop_bytes(
                net, (1, 2) + tuple(s + halo for s in shape)
            ),
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=list(SOURCE_SHAPE))
    parser.add_argument(
        "--spokes",
        type=int,
        default=None,
        help="radial spokes (default: 8-fold undersampling of the largest size)",
    )
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--unrolls", type=int, default=5)
    parser.add_argument(
        "--width", type=int, default=64, help="feature channels of the ResNet3d regularizer"
    )
    parser.add_argument(
        "--layers", type=int, default=5, help="3x3x3 convolutions of the ResNet3d regularizer"
    )
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument(
        "--backend",
        default="auto",
        help="NUFFT backend (sigpy needs less memory for the Toeplitz kernel)",
    )
    parser.add_argument("--quick", action="store_true", help="40x30x40 smoke run")
    parser.add_argument("--estimate-only", action="store_true")
    parser.add_argument(
        "--single-step",
        action="store_true",
        help="measure one step in this process, without a warm-up step",
    )
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/bench_source_scale.json")
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.shape = [40, 30, 40]
        args.patch = min(args.patch, 16)
    problem = StepProblem(
        tuple(args.shape),
        coils=args.coils,
        unrolls=args.unrolls,
        spokes=args.spokes,
        backend=args.backend,
        width=args.width,
        n_layers=args.layers,
    )
    problem.check_patch(args.patch)
    checkpointed = replace(problem, checkpoint_unrolls=True)

    print(
        f"Problem {problem.shape}, {problem.coils} coils, {problem.n_spokes} spokes x "
        f"{problem.n_readout}, {problem.unrolls} unrolls, ResNet3d {problem.n_layers}x"
        f"{problem.width}, patch {args.patch}",
        file=sys.stderr,
    )
    result = {
        "problem": problem_dict(problem),
        "patch": args.patch,
        "data_bytes": data_bytes(problem),
        "threads": torch.get_num_threads(),
        "estimate": {
            "blockwise_bytes": estimate_step_bytes(problem, args.patch),
            "blockwise_checkpointed_unrolls_bytes": estimate_step_bytes(checkpointed, args.patch),
            "full_backprop_bytes": estimate_step_bytes(problem, None),
        },
        "regularizer": regularizer_rows(problem, args.patch),
    }
    est = result["estimate"]
    est["full_over_blockwise"] = est["full_backprop_bytes"] / est["blockwise_bytes"]
    est["full_over_blockwise_checkpointed"] = (
        est["full_backprop_bytes"] / est["blockwise_checkpointed_unrolls_bytes"]
    )
    if args.single_step and not args.estimate_only:
        result["single_step"] = single_step(problem, args.patch)
    elif not args.estimate_only:
        print(
            "Measuring one step (fresh process: warm-up step, then the measured step)",
            file=sys.stderr,
        )
        measured = measure_step(problem, args.patch, "cpu")
        scale = math.prod(SOURCE_SHAPE) / problem.voxels
        measured["seconds_extrapolated_to_source"] = measured["seconds"] * scale
        result["measured"] = measured
    print(report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, result)
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


def single_step(problem: StepProblem, patch: int) -> dict:
    """One block-wise training step in this process, no warm-up: seconds to build the data
    (trajectory, maps, k-space, Toeplitz kernel), seconds of the step, its peak live tensor
    bytes and the process's resident high-water mark (data included), in bytes."""
    start = time.perf_counter()
    print("Building the data and the Toeplitz kernel", file=sys.stderr, flush=True)
    model, inputs = build_model(problem, patch), build_inputs(problem)
    inputs.op.toeplitz.kernel(torch.float32)
    build_seconds = time.perf_counter() - start
    print(f"  {build_seconds:.0f} s; running one training step", file=sys.stderr, flush=True)
    start = time.perf_counter()
    count = saved_bytes(lambda: training_step(model, inputs))
    seconds = time.perf_counter() - start
    return {
        "build_seconds": build_seconds,
        "seconds": seconds,
        "saved_bytes": count,
        "process_peak_rss_bytes": rss_high_water_mark(),
        "finite_gradients": all(bool(torch.isfinite(p.grad).all()) for p in model.parameters()),
    }


def report(result: dict) -> str:
    est, reg = result["estimate"], result["regularizer"]
    data = sum(result["data_bytes"].values())
    lines = [
        f"{'step memory above the data (GiB)':<48}{'estimate':>10}{'measured':>10}",
        f"{'block-wise, patch ' + str(result['patch']):<48}"
        f"{est['blockwise_bytes'] / GIB:>10.3f}" + _measured(result, "saved_bytes"),
        f"{'  peak RSS increase':<48}{'':>10}" + _measured(result, "rss_bytes"),
        f"{'block-wise, checkpointed unrolls':<48}"
        f"{est['blockwise_checkpointed_unrolls_bytes'] / GIB:>10.3f}",
        f"{'full backpropagation':<48}{est['full_backprop_bytes'] / GIB:>10.3f}",
        f"full / block-wise: {est['full_over_blockwise']:.1f}x "
        f"({est['full_over_blockwise_checkpointed']:.1f}x with checkpointed unrolls)",
        f"data kept for the run (k-space, trajectory, maps, Toeplitz kernel, parameters + Adam):"
        f" {data / GIB:.3f} GiB",
        f"regularizer alone: one patch forward+backward {reg['patch_activation_bytes'] / MIB:.1f}"
        " MiB (any volume)",
    ]
    for key in ("volume", "half_volume"):
        row = reg[key]
        lines.append(
            f"  {'x'.join(map(str, row['shape'])):>12}: block-wise "
            f"{row['blockwise_bytes'] / MIB:9.1f} MiB, full {row['full_bytes'] / MIB:9.1f}"
            f" MiB ({row['full_bytes'] / row['blockwise_bytes']:.1f}x)"
        )
    if "single_step" in result:
        m = result["single_step"]
        lines.append(
            f"one step in this process: {m['seconds'] / 60:.1f} min (data and kernel "
            f"built in {m['build_seconds'] / 60:.1f} min), peak live tensors "
            f"{m['saved_bytes'] / GIB:.3f} GiB, process peak RSS "
            f"{m['process_peak_rss_bytes'] / GIB:.2f} GiB (data included), gradients "
            f"{'finite' if m['finite_gradients'] else 'NOT finite'}"
        )
    if "measured" in result:
        m = result["measured"]
        lines.append(
            f"measured step: {m['seconds']:.1f} s; extrapolated to "
            f"{'x'.join(map(str, SOURCE_SHAPE))} (linear in voxels): "
            f"{m['seconds_extrapolated_to_source'] / 60:.0f} min"
        )
    return "\n".join(lines)


def _measured(result: dict, key: str) -> str:
    if "measured" not in result:
        return f"{'-':>10}"
    return f"{result['measured'][key] / GIB:>10.3f}"


if __name__ == "__main__":
    sys.exit(main())
