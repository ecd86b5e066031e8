"""How good a proxy reference is: images from all spokes against the truth, and what is left to
learn when 1/R of the spokes are kept (``blockrecon undersample``).

A simulated pulmonary angiography phantom (``physics.angio_phantom``, seed ``--seed``), N^3
(``--size``, default 32), 8 birdcage coils, 3D golden-means radial with ``pi N^2 / 2`` spokes
(angular Nyquist) of ``2 N`` samples, k-space SNR ``--snr`` dB, simulated on a 2x finer grid.
Rows, PSNR and SSIM against the true image (``recon.psnr``/``ssim``, magnitude, scale-fitted):

- the references ``blockrecon undersample`` can store, from all spokes: CG-SENSE (20
  iterations) and L1-wavelet (30 iterations, lambda 1e-2), true maps;
- for each R of ``--factors``, gridding (Pipe-Menon density compensation) and CG-SENSE of the
  kept spokes, for ``golden`` (first spokes) and ``random`` (seed 0) orders.

A reference is useful for training when it stands well above what the kept spokes give by
classical means. Writes ``--json`` and ``--png`` (maximum-intensity projections of the truth,
the CG reference and gridding at R = the largest factor), by default to
``benchmarks/results/``. ``--quick``: 16^3, R = 4.

Usage: python benchmarks/bench_undersample.py [--quick] [--size N] [--factors R ...]
[--json PATH] [--png PATH]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from blockrecon.cli.output import write_json
from blockrecon.physics import simulate_acquisition, undersample_spokes
from blockrecon.physics.trajectory import radial_3d
from blockrecon.recon import cg_sense, grid_recon, l1_wavelet, psnr, ssim

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = (("image", 30), ("spokes", 6), ("PSNR dB", 8), ("SSIM", 6))


def scan(size: int, snr_db: float, seed: int):
    """The fully sampled angiography acquisition with its true maps and image."""
    n_spokes = round(math.pi * size**2 / 2)
    coord = radial_3d(n_spokes, 2 * size, image_size=size)
    return simulate_acquisition(
        coord, (size,) * 3, n_coils=8, phantom="angio", snr_db=snr_db, seed=seed
    )


def row(name: str, spokes: int, image: torch.Tensor, truth: torch.Tensor) -> dict:
    return {
        "image": name,
        "spokes": spokes,
        "psnr_db": psnr(image, truth),
        "ssim": ssim(image, truth),
    }


def measure(acq, factors: list[float]) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The table's rows and the images of the figure."""
    truth, spokes = acq.image, acq.sample_shape[0]
    reference = cg_sense(acq.kspace, acq.coord, acq.maps, n_iter=20, progress=False)
    l1 = l1_wavelet(acq.kspace, acq.coord, acq.maps, lamda=1e-2, n_iter=30, progress=False)
    rows = [row("reference cg, all spokes", spokes, reference, truth)]
    rows.append(row("reference l1, all spokes", spokes, l1, truth))
    images = {"truth": truth, "CG reference": reference}
    for factor in factors:
        for order in ("golden", "random"):
            kept = undersample_spokes(acq, factor, order=order, seed=0)
            n_kept = kept.sample_shape[0]
            gridded = grid_recon(kept.kspace, kept.coord, kept.maps, progress=False)
            cg = cg_sense(kept.kspace, kept.coord, kept.maps, n_iter=20, progress=False)
            rows.append(row(f"R={factor:g} {order} grid", n_kept, gridded, truth))
            rows.append(row(f"R={factor:g} {order} cg", n_kept, cg, truth))
            if order == "golden":
                images[f"grid, R={factor:g}"] = gridded
    return rows, images


def print_table(rows: list[dict]) -> None:
    print(" ".join(f"{name:>{width}}" for name, width in COLUMNS))
    for r in rows:
        print(f"{r['image']:>30} {r['spokes']:>6} {r['psnr_db']:>8.2f} {r['ssim']:>6.3f}")


def plot(images: dict[str, torch.Tensor], path: Path) -> None:
    """Coronal maximum-intensity projections (over the y axis), each scaled to its maximum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = list(images.items())[:2] + list(images.items())[-1:]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 4))
    for ax, (title, image) in zip(axes, chosen, strict=True):
        mip = image.abs().amax(dim=1)
        ax.imshow((mip / mip.max()).numpy(), cmap="gray", origin="lower")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image size N of N^3")
    parser.add_argument("--factors", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    parser.add_argument("--snr", type=float, default=40.0, help="k-space SNR in dB")
    parser.add_argument("--seed", type=int, default=0, help="phantom and noise seed")
    parser.add_argument("--quick", action="store_true", help="16^3 and R = 4 only")
    parser.add_argument("--json", default=str(RESULTS / "bench_undersample.json"))
    parser.add_argument("--png", default=str(RESULTS / "bench_undersample.png"))
    args = parser.parse_args()
    size, factors = (16, [4.0]) if args.quick else (args.size, args.factors)
    acq = scan(size, args.snr, args.seed)
    rows, images = measure(acq, factors)
    print_table(rows)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"size": size, "snr_db": args.snr, "seed": args.seed, "rows": rows})
    plot(images, Path(args.png))


if __name__ == "__main__":
    main()
