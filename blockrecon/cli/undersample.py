"""``blockrecon undersample``: keep 1/R of a scan's spokes, with a reference from all of them.

Training pairs from fully sampled scans: the output holds the kept spokes
(:func:`~blockrecon.physics.undersample.undersample_spokes`: the first ``ceil(spokes/R)`` in
acquisition order for ``--order golden``, a seeded random subset for ``random``) and, as its
``image``, a reference reconstructed from every spoke of the input. The reference is
(``--reference``):

* by default, the input's own ``image`` when it has one (a simulation's truth, or a reference
  made earlier), else ``cg``;
* ``cg``: CG-SENSE, or ``l1``: L1-wavelet compressed sensing, from all samples, exactly as
  ``blockrecon recon --method cg|l1`` would reconstruct the input (``--iterations``,
  ``--lamda``, coil maps from the input or estimated from all its samples by ``--maps-method``
  and ``--calib-width``), replacing any image of the input;
* ``none``: no image (a test scan, not a training pair).

The output keeps the input's coil maps; maps estimated for the reference are not stored, so a
consumer estimates them from the kept spokes, as it would for a prospectively undersampled scan.
A stored density compensation is dropped (it belongs to the full trajectory). The output's
root attributes record how it was made: ``reference_method`` (``input``, ``cg``, ``l1`` or
``none``), ``reference_maps`` (``file``, ``espirit``, ``jsense`` or ``none``),
``reference_iterations`` and ``reference_lamda`` (for ``cg``/``l1``), ``undersampling_factor``,
``undersampling_order``, ``undersampling_seed``, ``source_file`` and ``source_spokes`` (the
input's spoke count). The kept spokes are
``blockrecon.physics.kept_spokes(source_spokes, factor, order, seed)`` (not stored: an HDF5
attribute holds at most 64 KiB, about 8000 indices).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from blockrecon.backend import resolve_device
from blockrecon.cli.maps import add_map_options, check_calib_width
from blockrecon.cli.nufft_backend import add_backend_option, announce_backend
from blockrecon.cli.output import check_output_file
from blockrecon.cli.recon import DEFAULT_ITERATIONS, DEFAULT_L1_LAMDA, coil_maps, reconstruct
from blockrecon.io import read_scan, write_acquisition
from blockrecon.physics import Acquisition, resolve_backend
from blockrecon.physics.undersample import ORDERS, kept_spokes, undersample_spokes
from blockrecon.recon import psnr, ssim

REFERENCES = ("cg", "l1", "none")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "undersample",
        help="keep 1/R of a scan's spokes; store a reference reconstructed from all of them",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("input", type=Path, help="fully sampled blockrecon .h5 or ISMRMRD file")
    parser.add_argument(
        "--factor",
        type=float,
        required=True,
        metavar="R",
        help="acceleration: keep ceil(spokes / R) spokes, 1 <= R <= spokes",
    )
    parser.add_argument("--out", type=Path, required=True, help="output blockrecon .h5 file")
    parser.add_argument(
        "--reference",
        choices=REFERENCES,
        default=None,
        help="reference image from all spokes: cg (CG-SENSE), l1 (L1-wavelet) or none "
        "(default: the input's image when it has one, else cg)",
    )
    parser.add_argument(
        "--order",
        choices=ORDERS,
        default="golden",
        help="golden: the first spokes in acquisition order (for golden-angle ordered data); "
        "random: a seeded random subset",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --order random")
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help=f"reference iterations (default cg {DEFAULT_ITERATIONS['cg']}, "
        f"l1 {DEFAULT_ITERATIONS['l1']})",
    )
    parser.add_argument(
        "--lamda",
        type=float,
        default=None,
        help=f"reference regularization: cg Tikhonov weight (default 0), l1 weight (default "
        f"{DEFAULT_L1_LAMDA:g})",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where the reference is computed"
    )
    add_backend_option(parser)
    add_map_options(parser)
    parser.set_defaults(func=run)


def _check_output(args: argparse.Namespace) -> None:
    if args.out.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"--out {args.out} must end in .h5 or .hdf5")
    check_output_file(args.out)
    if args.out.exists() and args.input.exists() and os.path.samefile(args.out, args.input):
        raise ValueError(f"--out {args.out} is the input file; write the output elsewhere")


def _reference_method(args: argparse.Namespace, acq: Acquisition) -> str:
    """``input``, ``cg``, ``l1`` or ``none``; options that the method ignores are refused."""
    method = args.reference or ("input" if acq.image is not None else "cg")
    if method not in ("cg", "l1") and (args.iterations is not None or args.lamda is not None):
        raise ValueError(
            f"--iterations and --lamda apply to a cg or l1 reference, not to '{method}' "
            "(give --reference cg or l1)"
        )
    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be positive, got {args.iterations}")
    return method


def _reference(
    args: argparse.Namespace, acq: Acquisition, method: str, device: torch.device, backend: str
) -> torch.Tensor:
    """The reference image from all samples of ``acq`` by ``method`` (cg or l1), computed on
    ``device`` with NUFFT ``backend``, returned on the CPU."""
    maps = coil_maps(args, acq)
    announce_backend(backend, device)
    print(f"Reference: {method} from all {acq.sample_shape[0]} spokes", file=sys.stderr)
    settings = argparse.Namespace(**{**vars(args), "method": method})
    return reconstruct(settings, acq.to(device), maps.to(device), backend).cpu()


def _provenance(args: argparse.Namespace, acq: Acquisition, method: str) -> dict[str, object]:
    """The output's attributes (module docstring)."""
    computed = method in ("cg", "l1")
    maps = "none" if not computed else "file" if acq.maps is not None else args.maps_method
    attributes: dict[str, object] = {
        "reference_method": method,
        "reference_maps": maps,
        "undersampling_factor": float(args.factor),
        "undersampling_order": args.order,
        "undersampling_seed": int(args.seed),
        "source_file": args.input.name,
        "source_spokes": int(acq.sample_shape[0]),
    }
    if computed:
        attributes["reference_iterations"] = args.iterations or DEFAULT_ITERATIONS[method]
        default_lamda = DEFAULT_L1_LAMDA if method == "l1" else 0.0
        attributes["reference_lamda"] = default_lamda if args.lamda is None else args.lamda
    return attributes


def run(args: argparse.Namespace) -> int:
    _check_output(args)
    device = resolve_device(args.device)
    backend = resolve_backend(args.backend, device)
    acq = read_scan(args.input)
    check_calib_width(args.calib_width, acq.image_shape)
    method = _reference_method(args, acq)
    output = undersample_spokes(acq, args.factor, args.order, args.seed)
    kept = kept_spokes(acq.sample_shape[0], args.factor, args.order, args.seed)
    if method in ("cg", "l1"):
        output = replace(output, image=_reference(args, acq, method, device, backend))
    elif method == "none":
        output = replace(output, image=None)
    write_acquisition(args.out, output, attributes=_provenance(args, acq, method))
    print(
        f"Wrote {args.out}: {len(kept)} of {acq.sample_shape[0]} spokes (R = {args.factor:g}, "
        f"{args.order}), reference: {method}",
        file=sys.stderr,
    )
    if method in ("cg", "l1") and acq.image is not None:
        quality = psnr(output.image, acq.image), ssim(output.image, acq.image)
        print(
            f"Reference against the input's image: PSNR {quality[0]:.2f} dB  SSIM {quality[1]:.3f}"
        )
    return 0
