"""``blockrecon recon``: reconstruct a blockrecon HDF5 or ISMRMRD acquisition.

Methods: ``grid`` (density-compensated adjoint), ``cg`` (CG-SENSE), ``l1`` (L1-wavelet
compressed sensing) and ``mbdl`` (a trained unrolled network applied block-wise). Coil maps come
from the input file, from ``--maps FILE``, or are estimated (ESPIRiT or JSENSE,
``--maps-method``, ``--calib-width``) when the input has none (or with ``--maps estimate``).
``--compress-coils N`` compresses the k-space to N virtual coils first (given maps projected by
the same matrix, estimated maps estimated on the virtual coils).
The image is written as NIfTI (magnitude, with the voxel size) or as HDF5 (complex ``image``
dataset); PSNR and SSIM are printed when the input holds a reference image.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from blockrecon.backend import resolve_device
from blockrecon.cli.compression import add_compression_option, check_virtual_coils
from blockrecon.cli.maps import add_map_options, check_calib_width, one_line_warnings
from blockrecon.cli.nufft_backend import add_backend_option, announce_backend
from blockrecon.cli.options import show_progress
from blockrecon.cli.output import check_output_file
from blockrecon.inference import (
    PatchSizeError,
    acquisition_maps,
    load_for_inference,
    reconstruct_with_model,
)
from blockrecon.io import IMAGE_SUFFIXES, read_maps, read_scan, write_image
from blockrecon.physics import Acquisition, compress_acquisition, pipe_menon_dcf, resolve_backend
from blockrecon.recon import cg_sense, grid_recon, l1_wavelet, psnr, ssim

METHODS = ("mbdl", "cg", "l1", "grid")
#: Default iterations of cg and l1; default L1 weight for data at unit image scale.
DEFAULT_ITERATIONS = {"cg": 20, "l1": 30}
DEFAULT_L1_LAMDA = 1e-2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recon",
        help="reconstruct an acquisition (blockrecon HDF5 or ISMRMRD)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("input", type=Path, help="blockrecon .h5 or ISMRMRD file")
    parser.add_argument(
        "--method",
        choices=METHODS,
        required=True,
        help="mbdl: trained network; cg: CG-SENSE; l1: L1-wavelet CS; grid: "
        "density-compensated adjoint",
    )
    parser.add_argument("--out", type=Path, required=True, help="output .nii, .nii.gz or .h5")
    parser.add_argument(
        "--model", type=Path, default=None, help="mbdl: model file (default: the pretrained model)"
    )
    parser.add_argument(
        "--patch", type=int, default=None, help="mbdl: block-wise core size (default: the model's)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where the reconstruction runs"
    )
    add_backend_option(parser)
    parser.add_argument(
        "--maps",
        default=None,
        help="coil maps: an HDF5 file with a 'maps' dataset, or 'estimate' "
        "(default: the input's maps, estimated when absent)",
    )
    add_map_options(parser)
    add_compression_option(parser)
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="cg/l1 iterations (default 20 / 30); mbdl: CG iterations of the "
        "model's data consistency (default: as trained; images larger "
        "than the training size may need more, see benchmarks/README.md)",
    )
    parser.add_argument(
        "--lamda",
        type=float,
        default=None,
        help="cg: Tikhonov weight (default 0); l1: L1 weight (default 1e-2)",
    )
    parser.set_defaults(func=run)


def _check_output(out: Path) -> None:
    if not out.name.endswith(IMAGE_SUFFIXES):
        raise ValueError(f"--out {out} must end in .nii, .nii.gz, .h5 or .hdf5")
    check_output_file(out)


def load_mbdl(
    args: argparse.Namespace, image_shape: tuple[int, ...], device: torch.device
) -> tuple[torch.nn.Module, dict]:
    """The unrolled network (eval mode, block-wise at ``--patch``) and its metadata (how it
    takes its data); a patch that is not positive, larger than the volume or off the network's
    stride is refused here, before any work, and blamed on ``--patch``, not the model file."""
    if args.patch is not None and args.patch < 1:
        raise ValueError(f"--patch must be a positive number of voxels, got {args.patch}")
    try:
        model, _, extra = load_for_inference(
            args.model, device, image_shape, args.patch, args.iterations
        )
    except PatchSizeError as err:
        raise ValueError(f"--patch {args.patch}: {err}") from None
    return model, extra


def reconstruct(
    args: argparse.Namespace,
    acq: Acquisition,
    maps: torch.Tensor,
    backend: str,
    mbdl: tuple[torch.nn.Module, dict] | None = None,
) -> torch.Tensor:
    """The complex64 image ``image_shape`` by ``args.method`` with NUFFT ``backend`` (``mbdl``:
    the loaded network and its metadata, from :func:`load_mbdl`)."""
    progress = show_progress(args)
    n_iter = args.iterations or DEFAULT_ITERATIONS.get(args.method, 1)
    if args.method == "grid":
        return grid_recon(
            acq.kspace, acq.coord, maps, dcf=acq.dcf, backend=backend, progress=progress
        )
    if args.method == "cg":
        return cg_sense(
            acq.kspace,
            acq.coord,
            maps,
            n_iter=n_iter,
            lamda=args.lamda or 0.0,
            backend=backend,
            progress=progress,
        )
    if args.method == "l1":
        dcf = (
            acq.dcf
            if acq.dcf is not None
            else pipe_menon_dcf(acq.coord, acq.image_shape, backend=backend, progress=progress)
        )
        lamda = DEFAULT_L1_LAMDA if args.lamda is None else args.lamda
        return l1_wavelet(
            acq.kspace,
            acq.coord,
            maps,
            lamda=lamda,
            n_iter=n_iter,
            weights=dcf,
            backend=backend,
            progress=progress,
        )
    model, extra = mbdl
    return reconstruct_with_model(
        model, acq.kspace, maps, acq.coord, extra, backend=backend, dcf=acq.dcf, progress=progress
    )


def _with_chosen_maps(args: argparse.Namespace, acq: Acquisition) -> Acquisition:
    """``acq`` with the maps of ``--maps FILE``, or without maps for ``--maps estimate``."""
    if args.maps is not None and args.maps != "estimate":
        return replace(acq, maps=read_maps(Path(args.maps), acq))
    check_calib_width(args.calib_width, acq.image_shape)
    return replace(acq, maps=None) if args.maps == "estimate" else acq


def coil_maps(args: argparse.Namespace, acq: Acquisition) -> torch.Tensor:
    """The maps of ``acq``, estimated from its (possibly virtual) coils when it has none
    (``--maps-method``, ``--calib-width``, ``--backend``; warnings as one line each)."""
    if acq.maps is not None:
        return acq.maps
    print(f"Estimating coil maps ({args.maps_method})", file=sys.stderr)
    with one_line_warnings(args.command):
        return acquisition_maps(
            acq,
            progress=show_progress(args),
            method=args.maps_method,
            calib_width=args.calib_width,
            backend=args.backend,
        )


def run(args: argparse.Namespace) -> int:
    _check_output(args.out)
    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be positive, got {args.iterations}")
    if args.method != "mbdl" and (args.model is not None or args.patch is not None):
        raise ValueError("--model and --patch apply to --method mbdl only")
    device = resolve_device(args.device)
    backend = resolve_backend(args.backend, device)
    acq = read_scan(args.input)
    check_virtual_coils(args.compress_coils, acq.num_coils, str(args.input))
    mbdl = load_mbdl(args, acq.image_shape, device) if args.method == "mbdl" else None
    acq = compress_acquisition(_with_chosen_maps(args, acq), args.compress_coils)
    maps = coil_maps(args, acq)
    acq = acq.to(device)
    announce_backend(backend, device)
    image = reconstruct(args, acq, maps.to(device), backend, mbdl).cpu()
    write_image(args.out, image, acq.voxel_size_mm, args.method)
    print(
        f"Wrote {args.out} ({args.method}, {'x'.join(map(str, acq.image_shape))})", file=sys.stderr
    )
    if acq.image is not None:
        reference = acq.image.cpu()
        print(f"PSNR {psnr(image, reference):.2f} dB  SSIM {ssim(image, reference):.3f}")
    return 0
