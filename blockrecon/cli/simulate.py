"""``blockrecon simulate``: write a simulated multi-coil 3D radial acquisition to HDF5."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blockrecon.io import write_acquisition
from blockrecon.physics.simulate import PHANTOMS, simulate_radial


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
        "simulate", help="simulate a multi-coil 3D radial acquisition into a blockrecon HDF5 file",
        description="Simulate a multi-coil 3D radial (kooshball) acquisition of an analytic "
                    "phantom from a 2x finer grid and write it, with the reference image and "
                    "the true coil maps, as a blockrecon HDF5 file.")
    parser.add_argument("--out", type=Path, required=True, help="output .h5 file")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 32, 32),
                        metavar=("Z", "Y", "X"), help="image grid")
    parser.add_argument("--coils", type=int, default=8, help="birdcage coils")
    parser.add_argument("--spokes", type=int, default=None,
                        help="radial spokes (default pi N^2 / 16: 8x undersampled)")
    parser.add_argument("--readout", type=int, default=None,
                        help="samples per spoke (default 2 N)")
    parser.add_argument("--snr", type=snr_value, default=30.0,
                        help="k-space SNR in dB, or 'none' for noise-free data")
    parser.add_argument("--phantom", choices=PHANTOMS, default="shepp_logan",
                        help="analytic phantom")
    parser.add_argument("--seed", type=int, default=0, help="noise and phantom seed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"--out {args.out} must end in .h5 or .hdf5")
    if not args.out.parent.is_dir():
        raise FileNotFoundError(f"--out folder {args.out.parent} does not exist")
    acq = simulate_radial(args.shape, n_coils=args.coils, n_spokes=args.spokes,
                          n_readout=args.readout, phantom=args.phantom, snr_db=args.snr,
                          seed=args.seed)
    write_acquisition(args.out, acq)
    spokes, readout = acq.sample_shape
    noise = "noise-free" if args.snr is None else f"SNR {args.snr:g} dB"
    print(f"Wrote {args.out}: {'x'.join(map(str, acq.image_shape))} {args.phantom}, "
          f"{acq.num_coils} coils, {spokes} spokes x {readout} samples, {noise}",
          file=sys.stderr)
    return 0
