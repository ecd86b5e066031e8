"""``blockrecon train``: train a block-wise unrolled network (parsing only; the work is
:func:`blockrecon.train.fit`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from blockrecon.cli.compression import add_compression_option, check_virtual_coils
from blockrecon.cli.maps import add_map_options, one_line_warnings
from blockrecon.cli.nufft_backend import add_backend_option
from blockrecon.cli.options import non_negative_float, positive_int, show_progress
from blockrecon.cli.output import check_output_folder, removed_on_failure
from blockrecon.cli.simulate import snr_value
from blockrecon.physics import resolve_backend
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.train import (
    AcquisitionFiles,
    SelfSupervised,
    SimulatedRadialPairs,
    Supervised,
    fit,
)
from blockrecon.train.distributed import is_main_process
from blockrecon.train.kspace_split import held_out_count
from blockrecon.train.loop import METRICS_NAME, MODEL_NAME
from blockrecon.train.simulated import SEEDED_PHANTOMS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an unrolled network with block-wise learning",
        description="Train an unrolled network (full-volume data consistency, block-wise "
        "ResNet regularizer) on simulated or stored acquisitions. Checkpoints every "
        "epoch and on SIGINT/SIGTERM; --resume continues exactly (give the same "
        "arguments, --epochs may grow). Runs under torchrun for DDP.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        type=Path,
        help="folder of scan files (blockrecon .h5 or ISMRMRD .h5/.mrd), with reference images "
        "unless --self-supervised",
    )
    source.add_argument(
        "--simulate",
        type=int,
        metavar="N",
        help="train on N simulated acquisitions (--phantom)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--epochs", type=int, default=10, help="epochs to train in all")
    parser.add_argument(
        "--val",
        type=int,
        default=0,
        metavar="N",
        help="validation acquisitions: N more simulated ones, or the last N files of --data",
    )
    parser.add_argument("--batch", type=int, default=1, help="acquisitions per step per process")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the weights, the data order and simulated data"
    )
    parser.add_argument(
        "--density-weights",
        action="store_true",
        help="data consistency on density-weighted operators (stored DCF, else "
        "Pipe-Menon): better conditioned, but noise is amplified at high "
        "k-space frequencies; recon applies the model the same way",
    )
    parser.add_argument(
        "--data-memory",
        type=non_negative_float,
        default=None,
        metavar="GIB",
        help="memory for built training pairs (k-space, maps, Toeplitz kernels), in GiB; pairs "
        "beyond it are rebuilt from disk when used (default: a quarter of this machine's memory)",
    )
    ssdu = parser.add_argument_group("self-supervised training (SSDU: no reference images needed)")
    ssdu.add_argument(
        "--self-supervised",
        action="store_true",
        help="split each scan's readouts into a data-consistency set and a held-out set, "
        "and train the image from the first to predict the k-space of the second",
    )
    ssdu.add_argument(
        "--loss-fraction",
        type=float,
        default=None,
        help="fraction of the readouts held out for the loss, in (0, 1) (default 0.4)",
    )
    ssdu.add_argument(
        "--splits", type=positive_int, default=None, help="random splits per scan (default 1)"
    )
    architecture = parser.add_argument_group("architecture")
    architecture.add_argument("--patch", type=int, default=32, help="block-wise core size")
    architecture.add_argument(
        "--unrolls", type=int, default=5, help="alternations of regularizer and data consistency"
    )
    architecture.add_argument("--width", type=int, default=32, help="ResNet feature channels")
    architecture.add_argument("--layers", type=int, default=5, help="ResNet convolutions")
    architecture.add_argument(
        "--dc",
        choices=("gradient", "cg"),
        default="gradient",
        help="data consistency: learned gradient step or CG (MoDL)",
    )
    simulation = parser.add_argument_group("simulation (--simulate)")
    simulation.add_argument("--size", type=int, default=32, help="image size N of N^3")
    simulation.add_argument(
        "--spokes", type=int, default=None, help="radial spokes (default pi N^2 / 16)"
    )
    simulation.add_argument("--coils", type=int, default=4, help="birdcage coils")
    simulation.add_argument("--snr", type=snr_value, default=30.0, help="k-space SNR in dB")
    simulation.add_argument(
        "--phantom",
        choices=SEEDED_PHANTOMS,
        default="ellipsoids",
        help="the object, drawn anew for every acquisition: random ellipsoids or the pulmonary "
        "angiography phantom",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="training device (under torchrun: cuda:LOCAL_RANK)",
    )
    add_backend_option(parser)
    add_compression_option(parser)
    maps = parser.add_argument_group("coil maps (--data files without maps)")
    add_map_options(maps)
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace) -> dict:
    return {
        "regularizer": {"kind": "resnet3d", "width": args.width, "n_layers": args.layers},
        "dc": {"kind": args.dc},
        "n_unrolls": args.unrolls,
        "patch_size": args.patch,
        "init": "adjoint",
    }


def _simulated(args: argparse.Namespace):
    if args.simulate < 1:
        raise ValueError(f"--simulate must be positive, got {args.simulate}")
    check_virtual_coils(args.compress_coils, args.coils, "the simulation (--coils)")
    spokes = args.spokes or radial_spokes(args.size)
    if args.self_supervised:
        held_out_count(spokes, args.loss_fraction, "the simulation (--spokes)")
    settings = dict(
        image_size=args.size,
        n_spokes=spokes,
        n_coils=args.coils,
        snr_db=args.snr,
        normalize=True,
        density_weights=args.density_weights,
        backend=args.backend,
        compress_coils=args.compress_coils,
        phantom=args.phantom,
    )
    train = SimulatedRadialPairs(args.simulate, seed=args.seed, **settings)
    val = (
        SimulatedRadialPairs(args.val, seed=args.seed + 1_000_000, **settings)
        if args.val > 0
        else None
    )
    description = {
        "source": "simulated",
        "items": args.simulate,
        "val": args.val,
        "size": args.size,
        "spokes": spokes,
        "coils": args.coils,
        "snr_db": args.snr,
    }
    if args.phantom != "ellipsoids":  # absent otherwise, so that older runs resume
        description["phantom"] = args.phantom
    return train, val, description


def data_memory_bytes(gib: float | None) -> int:
    """``gib`` GiB in bytes; ``None``: a quarter of the machine's physical memory."""
    if gib is None:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    return int(gib * 2**30)


def _files(args: argparse.Namespace):
    everything = AcquisitionFiles.from_folder(
        args.data,
        require_image=not args.self_supervised,
        memory_budget=data_memory_bytes(args.data_memory),
        density_weights=args.density_weights,
        backend=args.backend,
        maps_method=args.maps_method,
        calib_width=args.calib_width,
        compress_coils=args.compress_coils,
    )
    if args.self_supervised:
        for info in everything.infos:
            held_out_count(info.sample_shape[0], args.loss_fraction, str(info.path))
    if not 0 <= args.val < len(everything):
        raise ValueError(
            f"--val {args.val} must leave training files: {args.data} holds {len(everything)}"
        )
    cut = len(everything) - args.val
    train = everything.subset(range(cut))  # one cache: one memory budget for both
    val = everything.subset(range(cut, len(everything))) if args.val else None
    description = {
        "source": "files",
        "folder": str(args.data.resolve()),
        "files": [p.name for p in everything.paths],
        "val": args.val,
    }
    return train, val, description


def _size(nbytes: float) -> str:
    """A byte count in MiB below 1 GiB, in GiB above."""
    return f"{nbytes / 2**20:.1f} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:.2f} GiB"


def _data_memory(train) -> str:
    """``; training data ...`` for files: their built size, what stayed in memory, the budget."""
    if not isinstance(train, AcquisitionFiles):
        return ""
    return (
        f"; training data {_size(train.estimated_bytes())} built, "
        f"{_size(train.cache.held_bytes)} kept in memory (budget {_size(train.cache.budget_bytes)})"
    )


def _objective(args: argparse.Namespace):
    """The objective; ``--loss-fraction`` and ``--splits`` are refused without
    ``--self-supervised``, and take their defaults (0.4, 1) with it."""
    if not args.self_supervised:
        for option, value in (("--loss-fraction", args.loss_fraction), ("--splits", args.splits)):
            if value is not None:
                raise ValueError(f"{option} applies only to --self-supervised training")
        return Supervised()
    args.loss_fraction = 0.4 if args.loss_fraction is None else args.loss_fraction
    args.splits = 1 if args.splits is None else args.splits
    return SelfSupervised(loss_fraction=args.loss_fraction, splits=args.splits)


def _report(message: str) -> None:
    """Print the run's final message to stderr once: on rank 0 only under torchrun."""
    if is_main_process():
        print(message, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.val < 0:
        raise ValueError(f"--val must be >= 0, got {args.val}")
    check_output_folder(args.out)
    objective = _objective(args)
    backend = resolve_backend(args.backend, args.device)
    train, val, description = _simulated(args) if args.simulate is not None else _files(args)
    if args.compress_coils is not None:  # absent otherwise, so that older runs resume
        description["compress_coils"] = args.compress_coils
    with removed_on_failure(args.out), one_line_warnings("train"):
        result = fit(
            _config(args),
            train,
            args.out,
            val_data=val,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch,
            seed=args.seed,
            resume=args.resume,
            device=args.device,
            progress=show_progress(args),
            objective=objective,
            data_description=description,
        )
    if result.stopped_by is not None:
        name = signal.Signals(result.stopped_by).name
        _report(f"Stopped by {name}; checkpoint saved in {args.out}; continue with --resume")
        return 128 + int(result.stopped_by)
    _report(
        f"Trained {len(result.history)} epochs (NUFFT backend {backend}){_data_memory(train)}; "
        f"model {args.out / MODEL_NAME}, metrics {args.out / METRICS_NAME}"
    )
    return 0
