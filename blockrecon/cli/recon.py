"""``blockrecon recon``: reconstruct a blockrecon HDF5 or ISMRMRD acquisition.

Methods: ``grid`` (density-compensated adjoint), ``cg`` (CG-SENSE), ``l1`` (L1-wavelet
compressed sensing) and ``mbdl`` (a trained unrolled network applied block-wise). Coil maps come
from the input file, from ``--maps FILE``, or are estimated (ESPIRiT or JSENSE,
``--maps-method``, ``--calib-width``) when the input has none (or with ``--maps estimate``).
The image is written as NIfTI (magnitude, with the voxel size) or as HDF5 (complex ``image``
dataset); PSNR and SSIM are printed when the input holds a reference image.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch

from blockrecon.cli.maps import add_map_options, check_calib_width, one_line_warnings
from blockrecon.cli.nufft_backend import add_backend_option, announce_backend
from blockrecon.cli.output import check_output_file
from blockrecon.io import atomic_path, check_acquisition, read_acquisition, read_ismrmrd
from blockrecon.io.hdf5 import open_hdf5, read_dataset
from blockrecon.io.nifti import write_nifti
from blockrecon.physics import Acquisition, pipe_menon_dcf, resolve_backend
from blockrecon.recon import cg_sense, grid_recon, l1_wavelet, psnr, ssim
from blockrecon.train.data import (
    acquisition_maps,
    reconstruct_with_model,
)

METHODS = ("mbdl", "cg", "l1", "grid")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
HDF5_SUFFIXES = (".h5", ".hdf5")
#: Default iterations of cg and l1; default L1 weight for data at unit image scale.
DEFAULT_ITERATIONS = {"cg": 20, "l1": 30}
DEFAULT_L1_LAMDA = 1e-2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recon", help="reconstruct an acquisition (blockrecon HDF5 or ISMRMRD)",
        description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="blockrecon .h5 or ISMRMRD file")
    parser.add_argument("--method", choices=METHODS, required=True,
                        help="mbdl: trained network; cg: CG-SENSE; l1: L1-wavelet CS; grid: "
                             "density-compensated adjoint")
    parser.add_argument("--out", type=Path, required=True, help="output .nii, .nii.gz or .h5")
    parser.add_argument("--model", type=Path, default=None,
                        help="mbdl: model file (default: the pretrained model)")
    parser.add_argument("--patch", type=int, default=None,
                        help="mbdl: block-wise core size (default: the model's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the reconstruction runs")
    add_backend_option(parser)
    parser.add_argument("--maps", default=None,
                        help="coil maps: an HDF5 file with a 'maps' dataset, or 'estimate' "
                             "(default: the input's maps, estimated when absent)")
    add_map_options(parser)
    parser.add_argument("--iterations", type=int, default=None,
                        help="cg/l1 iterations (default 20 / 30); mbdl: CG iterations of the "
                             "model's data consistency (default: as trained; images larger "
                             "than the training size may need more, see benchmarks/README.md)")
    parser.add_argument("--lamda", type=float, default=None,
                        help="cg: Tikhonov weight (default 0); l1: L1 weight (default 1e-2)")
    parser.set_defaults(func=run)


def _check_output(out: Path) -> None:
    if not out.name.endswith(NIFTI_SUFFIXES + HDF5_SUFFIXES):
        raise ValueError(f"--out {out} must end in .nii, .nii.gz, .h5 or .hdf5")
    check_output_file(out)


def read_input(path: Path) -> Acquisition:
    """A blockrecon HDF5 file (``blockrecon_format`` attribute) or an ISMRMRD file (a
    ``dataset`` group, or a ``.mrd`` name), told apart by their content."""
    with open_hdf5(path) as handle:
        blockrecon_file = "blockrecon_format" in handle.attrs
        ismrmrd_file = isinstance(handle.get("dataset"), h5py.Group)
    if blockrecon_file:
        return read_acquisition(path)
    if ismrmrd_file or path.suffix == ".mrd":
        return read_ismrmrd(path)
    raise ValueError(f"{path}: neither a blockrecon acquisition file (no 'blockrecon_format' "
                     "attribute) nor an ISMRMRD file (no 'dataset' group)")


def _read_maps(path: Path, acq: Acquisition) -> torch.Tensor:
    with open_hdf5(path) as handle:
        array = read_dataset(handle, "maps", path)
    if array.dtype.names is not None and len(array.dtype.names) == 2:
        array = array[array.dtype.names[0]] + 1j * array[array.dtype.names[1]]
    if not np.iscomplexobj(array):
        raise ValueError(f"{path}: dataset 'maps' has dtype {array.dtype}, expected complex64")
    maps = torch.from_numpy(np.ascontiguousarray(array, dtype=np.complex64))
    check_acquisition(replace(acq, maps=maps), str(path))
    return maps


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    return torch.device(name)


def load_mbdl(args: argparse.Namespace, image_shape: tuple[int, ...], device: torch.device
              ) -> tuple[torch.nn.Module, dict]:
    """The unrolled network (eval mode, block-wise at ``--patch``) and its metadata (how it
    takes its data); a patch that is not positive, larger than the volume or off the network's
    stride is refused here, before any work, and blamed on ``--patch``, not the model file."""
    from blockrecon import models

    if args.patch is not None and args.patch < 1:
        raise ValueError(f"--patch must be a positive number of voxels, got {args.patch}")
    model, config, extra = models.load_model_or_pretrained(args.model, device)
    overrides = {} if args.patch is None else {"patch_size": args.patch}
    if args.iterations is not None:
        if config["dc"]["kind"] != "cg":
            raise ValueError(f"--iterations sets CG data-consistency iterations, but the model's "
                             f"data consistency is {config['dc']['kind']!r}")
        overrides["dc"] = {**config["dc"], "n_iter": args.iterations}
    try:
        if overrides:
            model, _, _ = models.load_model_or_pretrained(args.model, device, overrides)
        regularizer = model.regularizers[0]
        if hasattr(regularizer, "plan"):
            regularizer.plan(image_shape)
    except ValueError as err:
        if args.patch is None:
            raise
        raise ValueError(f"--patch {args.patch}: {err}") from None
    return model, extra


def reconstruct(args: argparse.Namespace, acq: Acquisition, maps: torch.Tensor, backend: str,
                mbdl: tuple[torch.nn.Module, dict] | None = None) -> torch.Tensor:
    """The complex64 image ``image_shape`` by ``args.method`` with NUFFT ``backend`` (``mbdl``:
    the loaded network and its metadata, from :func:`load_mbdl`)."""
    progress = _progress(args)
    n_iter = args.iterations or DEFAULT_ITERATIONS.get(args.method, 1)
    if args.method == "grid":
        return grid_recon(acq.kspace, acq.coord, maps, dcf=acq.dcf, backend=backend,
                          progress=progress)
    if args.method == "cg":
        return cg_sense(acq.kspace, acq.coord, maps, n_iter=n_iter, lamda=args.lamda or 0.0,
                        backend=backend, progress=progress)
    if args.method == "l1":
        dcf = acq.dcf if acq.dcf is not None else pipe_menon_dcf(
            acq.coord, acq.image_shape, backend=backend, progress=progress)
        lamda = DEFAULT_L1_LAMDA if args.lamda is None else args.lamda
        return l1_wavelet(acq.kspace, acq.coord, maps, lamda=lamda, n_iter=n_iter, weights=dcf,
                          backend=backend, progress=progress)
    model, extra = mbdl
    return reconstruct_with_model(model, acq.kspace, maps, acq.coord, extra, backend=backend,
                                  dcf=acq.dcf, progress=progress)


def _coil_maps(args: argparse.Namespace, acq: Acquisition) -> torch.Tensor:
    if args.maps is not None and args.maps != "estimate":
        return _read_maps(Path(args.maps), acq)
    check_calib_width(args.calib_width, acq.image_shape)
    if acq.maps is None or args.maps == "estimate":
        print(f"Estimating coil maps ({args.maps_method})", file=sys.stderr)
    with one_line_warnings("recon"):
        return acquisition_maps(acq, estimate=args.maps == "estimate", progress=_progress(args),
                                method=args.maps_method, calib_width=args.calib_width)


def write_image(path: Path, image: torch.Tensor, acq: Acquisition, method: str) -> None:
    """NIfTI (magnitude, voxel size from the acquisition) or HDF5 (complex ``image``)."""
    if path.name.endswith(NIFTI_SUFFIXES):
        write_nifti(path, image, acq.voxel_size_mm)
        return
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.create_dataset("image", data=image.detach().cpu().numpy().astype(np.complex64))
        handle.attrs["blockrecon_format"] = "image"
        handle.attrs["voxel_size_mm"] = np.asarray(acq.voxel_size_mm, dtype=np.float64)
        handle.attrs["method"] = method


def run(args: argparse.Namespace) -> int:
    _check_output(args.out)
    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be positive, got {args.iterations}")
    if args.method != "mbdl" and (args.model is not None or args.patch is not None):
        raise ValueError("--model and --patch apply to --method mbdl only")
    device = _device(args.device)
    backend = resolve_backend(args.backend, device)
    acq = read_input(args.input)
    mbdl = load_mbdl(args, acq.image_shape, device) if args.method == "mbdl" else None
    maps = _coil_maps(args, acq)
    acq = acq.to(device)
    announce_backend(backend, device)
    image = reconstruct(args, acq, maps.to(device), backend, mbdl).cpu()
    write_image(args.out, image, acq, args.method)
    print(f"Wrote {args.out} ({args.method}, {'x'.join(map(str, acq.image_shape))})",
          file=sys.stderr)
    if acq.image is not None:
        reference = acq.image.cpu()
        print(f"PSNR {psnr(image, reference):.2f} dB  SSIM {ssim(image, reference):.3f}")
    return 0
