"""``blockrecon simulate``: write a simulated multi-coil 3D radial acquisition to HDF5."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blockrecon.cli.output import check_output_file
from blockrecon.io import write_acquisition
from blockrecon.memory import check_memory, simulation_bytes
from blockrecon.physics.simulate import PHANTOMS, simulate_radial
from blockrecon.physics.trajectory import radial_spokes


def snr_value(text: str) -> float | None:
    """``--snr`` argument: a number of dB, or ``none``/``inf`` for noise-free data."""
    if text.lower() in ("none", "inf"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of dB or 'none': {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a multi-coil 3D radial acquisition into a blockrecon HDF5 file",
        description="Simulate a multi-coil 3D radial (kooshball) acquisition of an analytic "
        "phantom from a 2x finer grid and write it, with the reference image and "
        "the true coil maps, as a blockrecon HDF5 file.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output .h5 file")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(32, 32, 32),
        metavar=("Z", "Y", "X"),
        help="image grid",
    )
    parser.add_argument("--coils", type=int, default=8, help="birdcage coils")
    parser.add_argument(
        "--spokes",
        type=int,
        default=None,
        help="radial spokes (default pi N^2 / 16: 8x undersampled)",
    )
    parser.add_argument("--readout", type=int, default=None, help="samples per spoke (default 2 N)")
    parser.add_argument(
        "--snr",
        type=snr_value,
        default=30.0,
        help="k-space SNR in dB, or 'none' for noise-free data",
    )
    parser.add_argument(
        "--phantom",
        choices=PHANTOMS,
        default="shepp_logan",
        help="analytic phantom: 3D Shepp-Logan, random ellipsoids, or a pulmonary MR "
        "angiography phantom (a vessel tree over lungs, heart and soft tissue)",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise and phantom seed")
    parser.set_defaults(func=run)


def check_simulation_memory(
    shape: tuple[int, ...], coils: int, spokes: int | None, readout: int | None, option: str
) -> None:
    """ValueError, before anything is allocated, when simulating ``shape`` (radial, default
    spokes and readout as :func:`~blockrecon.physics.simulate.simulate_radial`) cannot fit in
    the available memory; ``option`` names the size in the message."""
    size = max(shape)
    samples = (spokes or radial_spokes(size)) * (readout or 2 * size)
    check_memory(simulation_bytes(shape, coils, samples), f"simulating {option}")


def run(args: argparse.Namespace) -> int:
    if args.out.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"--out {args.out} must end in .h5 or .hdf5")
    check_output_file(args.out)
    check_simulation_memory(
        args.shape,
        args.coils,
        args.spokes,
        args.readout,
        f"--shape {' '.join(map(str, args.shape))}",
    )
    acq = simulate_radial(
        args.shape,
        n_coils=args.coils,
        n_spokes=args.spokes,
        n_readout=args.readout,
        phantom=args.phantom,
        snr_db=args.snr,
        seed=args.seed,
    )
    write_acquisition(args.out, acq)
    spokes, readout = acq.sample_shape
    noise = "noise-free" if args.snr is None else f"SNR {args.snr:g} dB"
    print(
        f"Wrote {args.out}: {'x'.join(map(str, acq.image_shape))} {args.phantom}, "
        f"{acq.num_coils} coils, {spokes} spokes x {readout} samples, {noise}",
        file=sys.stderr,
    )
    return 0
