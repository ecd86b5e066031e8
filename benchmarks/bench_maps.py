"""Do estimated coil maps reconstruct as well as the true ones? CG-SENSE PSNR per map source.

A simulated 8-coil 3D radial scan of the Shepp-Logan phantom (golden-means kooshball with
readout N, ``--acceleration``-fold angular undersampling, k-space noise at ``--snr`` dB) is
reconstructed by CG-SENSE (20 iterations, FINUFFT) with the true maps and with ESPIRiT maps
estimated from its k-space: at the default calibration width (the diameter of the ball the
trajectory samples at Nyquist density) and at the former fixed width 24 (capped at N). The
table also gives the calibration width, the maps' explained energy (the plausibility statistic
behind :class:`~blockrecon.physics.maps.CoilMapWarning`) and the estimation time.

Usage: python benchmarks/bench_maps.py [--sizes 24 32 48] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from blockrecon.cli.output import write_json
from blockrecon.physics import radial_3d, simulate_acquisition
from blockrecon.physics.maps import (
    CoilMapWarning,
    calibration_kspace,
    default_calib_width,
    estimate_maps,
    explained_energy,
)
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.recon import cg_sense, psnr

FORMER_DEFAULT_WIDTH = 24


def measure(size: int, acceleration: float, snr_db: float) -> list[dict]:
    """Rows (true maps, default width, former width) for one ``size``^3 scan."""
    acq = simulate_acquisition(
        radial_3d(radial_spokes(size, acceleration), size), (size,) * 3, n_coils=8, snr_db=snr_db
    )

    def cg_psnr(maps: torch.Tensor) -> float:
        image = cg_sense(acq.kspace, acq.coord, maps, n_iter=20, backend="finufft", progress=False)
        return psnr(image, acq.image)

    rows = [
        {
            "size": size,
            "maps": "true",
            "calib_width": None,
            "psnr_db": cg_psnr(acq.maps),
            "explained_energy": None,
            "seconds": 0.0,
        }
    ]
    widths = {
        "estimated, default width": default_calib_width(acq.coord, acq.image_shape),
        "estimated, width 24": min(FORMER_DEFAULT_WIDTH, size),
    }
    for name, width in widths.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CoilMapWarning)
            maps = estimate_maps(acq.kspace, acq.coord, acq.image_shape, calib_width=width)
        seconds = time.perf_counter() - start
        energy = explained_energy(
            maps, calibration_kspace(acq.kspace, acq.coord, acq.image_shape, width)
        )
        rows.append(
            {
                "size": size,
                "maps": name,
                "calib_width": width,
                "psnr_db": cg_psnr(maps),
                "explained_energy": energy,
                "seconds": seconds,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[24, 32, 48])
    parser.add_argument("--acceleration", type=float, default=8.0)
    parser.add_argument("--snr", type=float, default=40.0, help="k-space SNR in dB")
    parser.add_argument("--json", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = [row for size in args.sizes for row in measure(size, args.acceleration, args.snr)]
    print(f"{'N':>4} {'maps':<26} {'width':>5} {'PSNR dB':>8} {'explained':>9} {'time s':>7}")
    for row in rows:
        width = "" if row["calib_width"] is None else row["calib_width"]
        energy = "" if row["explained_energy"] is None else f"{row['explained_energy']:.3f}"
        print(
            f"{row['size']:>4} {row['maps']:<26} {width:>5} {row['psnr_db']:>8.2f} "
            f"{energy:>9} {row['seconds']:>7.1f}"
        )
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
