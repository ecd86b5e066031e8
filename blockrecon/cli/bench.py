"""``blockrecon bench``: how much memory one training step takes at each patch size."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blockrecon import step_memory
from blockrecon.cli.nufft_backend import add_backend_option, announce_backend
from blockrecon.cli.options import show_progress
from blockrecon.cli.output import check_output_file, write_json
from blockrecon.memory_report import format_table, plot_step_memory
from blockrecon.physics import resolve_backend


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmarks: memory of a training step", description=__doc__.splitlines()[0]
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    benches = parser.add_subparsers(dest="bench", metavar="BENCH", parser_class=type(parser))
    memory = benches.add_parser(
        "memory",
        help="peak memory of one block-wise training step per patch size",
        description=step_memory.__doc__.splitlines()[0],
    )
    memory.add_argument(
        "--shape", type=int, nargs=3, required=True, metavar=("NZ", "NY", "NX"), help="image grid"
    )
    memory.add_argument("--coils", type=int, default=8, help="receive coils")
    memory.add_argument("--unrolls", type=int, default=5, help="unrolls of the network")
    memory.add_argument(
        "--patch", type=int, nargs="+", required=True, help="patch core sizes (voxels) to compare"
    )
    memory.add_argument(
        "--spokes", type=int, default=None, help="radial spokes (default: 8x angular undersampling)"
    )
    memory.add_argument("--width", type=int, default=32, help="ResNet3d feature channels")
    memory.add_argument("--layers", type=int, default=5, help="ResNet3d convolutions")
    memory.add_argument("--coil-batch", type=int, default=1, help="coils per Toeplitz/NUFFT call")
    memory.add_argument(
        "--checkpoint-unrolls",
        action="store_true",
        help="also checkpoint each unroll of the block-wise network",
    )
    memory.add_argument(
        "--self-supervised",
        action="store_true",
        help="a self-supervised step: reconstruct from part of the spokes, loss on the others",
    )
    memory.add_argument(
        "--loss-fraction",
        type=float,
        default=0.4,
        help="with --self-supervised: fraction of the spokes held out for the loss",
    )
    memory.add_argument(
        "--estimate-only",
        action="store_true",
        help="meta-device estimate only: nothing is allocated or run",
    )
    memory.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the step runs and is measured",
    )
    add_backend_option(memory)
    memory.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    memory.add_argument("--plot", type=Path, default=None, help="write a PNG figure")
    memory.set_defaults(func=run_memory)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_memory(args: argparse.Namespace) -> int:
    for path, option in ((args.json, "--json"), (args.plot, "--plot")):
        if path is not None:
            check_output_file(path, option)
    backend = resolve_backend(args.backend, args.device)
    problem = step_memory.StepProblem(
        tuple(args.shape),
        coils=args.coils,
        unrolls=args.unrolls,
        spokes=args.spokes,
        width=args.width,
        n_layers=args.layers,
        coil_batch=args.coil_batch,
        checkpoint_unrolls=args.checkpoint_unrolls,
        backend=backend,
        loss_fraction=args.loss_fraction if args.self_supervised else None,
    )
    if not args.estimate_only:
        announce_backend(backend, args.device)
    result = step_memory.memory_table(
        problem,
        args.patch,
        estimate_only=args.estimate_only,
        device=args.device,
        progress=show_progress(args),
    )
    print(format_table(result))
    if args.json is not None:
        write_json(args.json, result)
    if args.plot is not None:
        plot_step_memory(result, args.plot)
    return 0
