"""How much do fewer virtual coils cost and save? CG-SENSE and MBDL time and PSNR per coil count.

A simulated 32-coil 3D radial scan (Shepp-Logan phantom, birdcage coils, golden-means kooshball
with 2x readout oversampling, ``--acceleration``-fold angular undersampling, k-space noise at
``--snr`` dB, simulated from a 2x finer grid) is compressed to each of ``--virtual`` virtual
coils (:func:`blockrecon.physics.compress_coils`, the true maps projected by the same matrix)
and reconstructed by CG-SENSE (20 iterations) and by the shipped block-wise MBDL model
(:func:`blockrecon.models.load_pretrained`, data prepared as it was trained by
:func:`blockrecon.inference.reconstruct_with_model`). Times are wall times and include the
compression; PSNR is over the volume (:func:`blockrecon.recon.psnr`). Density weights, for a
model that takes them, are computed once and shared; the first coil count runs once untimed
first, so that no row pays for warm-up.

Usage: python benchmarks/bench_coil_compression.py [--quick] [--size N] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from blockrecon.cli.output import write_json
from blockrecon.inference import reconstruct_with_model
from blockrecon.models import load_pretrained
from blockrecon.physics import (
    Acquisition,
    compress_coils,
    pipe_menon_dcf,
    radial_3d,
    radial_spokes,
    simulate_acquisition,
)
from blockrecon.recon import cg_sense, psnr

PHYSICAL_COILS = 32
CG_ITERATIONS = 20
#: Table columns: heading and width.
COLUMNS = (
    ("N", 3),
    ("virtual", 7),
    ("energy", 7),
    ("CG s", 6),
    ("CG dB", 6),
    ("MBDL s", 7),
    ("MBDL dB", 7),
)


def simulated_scan(size: int, acceleration: float, snr_db: float) -> Acquisition:
    """The 32-coil radial scan of a ``size``^3 Shepp-Logan phantom."""
    coord = radial_3d(radial_spokes(size, acceleration), 2 * size, image_size=size)
    return simulate_acquisition(coord, (size,) * 3, n_coils=PHYSICAL_COILS, snr_db=snr_db)


def timed(run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    """The result of ``run()`` and its wall time in seconds."""
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def measure(acq: Acquisition, n_virtual: int, loaded: tuple, dcf: torch.Tensor) -> dict:
    """One row: energy kept, CG-SENSE and MBDL time and PSNR with ``n_virtual`` coils."""
    model, _, extra = loaded

    def cg() -> torch.Tensor:
        virtual = compress_coils(acq.kspace, acq.maps, n_virtual=n_virtual)
        return cg_sense(
            virtual.kspace, acq.coord, virtual.maps, n_iter=CG_ITERATIONS, progress=False
        )

    def mbdl() -> torch.Tensor:
        virtual = compress_coils(acq.kspace, acq.maps, n_virtual=n_virtual)
        return reconstruct_with_model(
            model, virtual.kspace, virtual.maps, acq.coord, extra, dcf=dcf
        )

    cg_image, cg_seconds = timed(cg)
    mbdl_image, mbdl_seconds = timed(mbdl)
    return {
        "size": acq.image_shape[0],
        "virtual_coils": n_virtual,
        "energy": compress_coils(acq.kspace, n_virtual=n_virtual).energy,
        "cg_seconds": cg_seconds,
        "cg_psnr_db": psnr(cg_image, acq.image),
        "mbdl_seconds": mbdl_seconds,
        "mbdl_psnr_db": psnr(mbdl_image, acq.image),
    }


def print_table(rows: list[dict]) -> None:
    """The rows as a plain-text table."""
    print(" ".join(f"{name:>{width}}" for name, width in COLUMNS))
    for row in rows:
        print(
            f"{row['size']:>3} {row['virtual_coils']:>7} {row['energy']:>7.4f} "
            f"{row['cg_seconds']:>6.1f} {row['cg_psnr_db']:>6.2f} "
            f"{row['mbdl_seconds']:>7.1f} {row['mbdl_psnr_db']:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 32^3 run (default 48^3)")
    parser.add_argument("--size", type=int, default=48, help="image size N of N^3")
    parser.add_argument("--virtual", type=int, nargs="+", default=[4, 8, 12, 32])
    parser.add_argument("--acceleration", type=float, default=8.0)
    parser.add_argument("--snr", type=float, default=40.0, help="k-space SNR in dB")
    parser.add_argument("--json", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    size = 32 if args.quick else args.size
    acq = simulated_scan(size, args.acceleration, args.snr)
    loaded = load_pretrained()
    dcf = pipe_menon_dcf(acq.coord, acq.image_shape, progress=False)
    measure(acq, args.virtual[0], loaded, dcf)  # warm-up: NUFFT plans, threads, allocator
    rows = [measure(acq, n, loaded, dcf) for n in args.virtual]
    print_table(rows)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
