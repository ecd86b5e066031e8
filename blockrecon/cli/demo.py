"""``blockrecon demo``: simulate a 3D radial acquisition and compare reconstructions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blockrecon import demo
from blockrecon.cli.nufft_backend import add_backend_option, announce_backend
from blockrecon.cli.options import show_progress
from blockrecon.cli.output import check_output_folder, write_json
from blockrecon.cli.simulate import check_simulation_memory
from blockrecon.inference import load_for_inference
from blockrecon.io.nifti import write_nifti
from blockrecon.physics import resolve_backend
from blockrecon.physics.trajectory import radial_spokes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate a multi-coil 3D radial scan and compare reconstructions",
        description=demo.__doc__.splitlines()[0],
    )
    parser.add_argument("--size", type=int, default=48, help="image size N of the N^3 volume")
    parser.add_argument("--coils", type=int, default=8, help="number of receive coils")
    parser.add_argument(
        "--acceleration",
        type=float,
        default=8.0,
        help="angular undersampling factor of the radial scan",
    )
    parser.add_argument("--snr", type=float, default=40.0, help="k-space SNR in dB")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for NIfTI volumes, the PNG figure and results.json",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model file for the MBDL method (default: the shipped pretrained model)",
    )
    add_backend_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output_folder(args.out)
    check_simulation_memory(
        (args.size,) * 3,
        args.coils,
        radial_spokes(args.size, args.acceleration),
        args.size,
        f"--size {args.size}",
    )
    progress = show_progress(args)
    backend = resolve_backend(args.backend, "cpu")
    model, _, extra = load_for_inference(args.model)
    acq = demo.simulate_demo(args.size, args.coils, args.acceleration, args.snr, args.seed)
    n_spokes = acq.coord.shape[0]
    print(
        f"Simulated {args.size}^3, {args.coils} coils, {n_spokes} spokes "
        f"({args.acceleration:g}x undersampled), SNR {args.snr:g} dB",
        file=sys.stderr,
    )
    announce_backend(backend, "cpu")
    methods = {
        **demo.classical_methods(acq, progress=progress, backend=backend),
        **demo.mbdl_method(acq, model, extra, progress=progress, backend=backend),
    }
    results = demo.run_demo(methods, progress=progress)
    rows = demo.quality_rows(results, acq.image)
    print(demo.format_table(rows))
    if args.out is not None:
        _write_outputs(args.out, acq, results, rows)
    return 0


def _write_outputs(out: Path, acq, results, rows) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_nifti(out / "reference.nii.gz", acq.image, (1.0, 1.0, 1.0))
    for result in results:
        write_nifti(out / f"{demo.file_stem(result.name)}.nii.gz", result.image, (1.0, 1.0, 1.0))
    demo.save_figure(out / "demo.png", acq.image, results)
    write_json(out / "results.json", rows)
    print(f"Wrote NIfTI volumes, demo.png and results.json to {out}", file=sys.stderr)
