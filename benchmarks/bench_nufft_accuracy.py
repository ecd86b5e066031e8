"""Accuracy of every CPU NUFFT backend against an exact DFT, and what it does to reconstructions.

Part 1, operators (``--size`` N, default 32: a golden-angle 3D radial trajectory of ``--spokes``
spokes, one coil, complex64, random image and k-space). Per backend:

- ``forward``/``adjoint``: relative error of ``A x`` and ``A^H y`` against the exact transform
  (the ``"dft"`` backend, complex128);
- ``toeplitz vs dft``: the Toeplitz normal ``T x`` against the exact ``A^H A x``;
- ``toeplitz vs pair``: ``T x`` against the backend's own ``A^H (A x)``;
- on a 16^3 grid (same sampling density; the operator as a dense 4096 x 4096 matrix):
  ``hermitian`` = ``||T - T^H|| / ||T||`` and ``min/max eig`` = the smallest eigenvalue of ``T``
  over the largest (``A^H A`` is positive semidefinite; rank deficient here, so the exact value
  is 0 and a negative one measures the kernel's error).

A row ``sigpy 1.25/4`` gives SigPy's own default kernel (oversampling 1.25, width 4), which the
``sigpy`` backend used before (forward and adjoint only: it was never a Toeplitz kernel option).

Part 2, reconstructions (``--demo-size``, default 48 as ``blockrecon demo``; 0 skips it): the
demo's data, CG-SENSE (20 iterations), L1-wavelet CS (30 iterations, Pipe-Menon weights) and the
shipped MBDL model per backend, with PSNR and the difference to FINUFFT.

Usage: python benchmarks/bench_nufft_accuracy.py [--quick] [--size N] [--demo-size N] [--json PATH]
(``--quick``: both parts at 16^3.)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from blockrecon import demo
from blockrecon.cli.output import write_json
from blockrecon.physics import available_backends, pipe_menon_dcf, radial_3d
from blockrecon.physics.nufft import NUFFT
from blockrecon.recon import cg_sense, l1_wavelet, psnr

#: Image side of the dense eigenvalue check (the matrix is ``side^6`` complex values).
EIGEN_SIDE = 16


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``||actual - expected|| / ||expected||`` in double precision."""
    actual, expected = actual.to(torch.complex128), expected.to(torch.complex128)
    return float((actual - expected).norm() / expected.norm())


def random_pair(
    shape: tuple[int, ...], samples: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A complex64 image ``shape`` and k-space ``(samples,)``, standard normal."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(shape, dtype=torch.complex64, generator=generator)
    return image, torch.randn(samples, dtype=torch.complex64, generator=generator)


def spokes_for(size: int, spokes_at_32: int) -> int:
    """Spokes giving the same angular density at ``size`` as ``spokes_at_32`` at 32^3."""
    return max(1, round(spokes_at_32 * (size / 32) ** 2))


def operator_row(backend: str, coord: torch.Tensor, shape: tuple[int, ...], exact: NUFFT) -> dict:
    """Forward, adjoint and Toeplitz errors of one backend against the exact transform."""
    image, kspace = random_pair(shape, coord.shape[0] * coord.shape[1])
    kspace = kspace.reshape(coord.shape[:-1])
    op = NUFFT(coord, shape, backend=backend)
    exact_normal = exact.adjoint(exact(image.to(torch.complex128)))
    toeplitz = op.normal(image)
    return {
        "backend": backend,
        "forward": relative_error(op(image), exact(image.to(torch.complex128))),
        "adjoint": relative_error(op.adjoint(kspace), exact.adjoint(kspace.to(torch.complex128))),
        "toeplitz_vs_dft": relative_error(toeplitz, exact_normal),
        "toeplitz_vs_pair": relative_error(toeplitz, op.adjoint(op(image))),
    }


def sigpy_default_row(coord: torch.Tensor, shape: tuple[int, ...], exact: NUFFT) -> dict:
    """Forward and adjoint errors of SigPy's own default kernel (oversampling 1.25, width 4)."""
    import sigpy

    image, kspace = random_pair(shape, coord.shape[0] * coord.shape[1])
    kspace = kspace.reshape(coord.shape[:-1])
    forward = torch.from_numpy(sigpy.nufft(image.numpy(), coord.numpy()))
    adjoint = torch.from_numpy(sigpy.nufft_adjoint(kspace.numpy(), coord.numpy(), shape))
    return {
        "backend": "sigpy 1.25/4",
        "forward": relative_error(forward, exact(image.to(torch.complex128))),
        "adjoint": relative_error(adjoint, exact.adjoint(kspace.to(torch.complex128))),
    }


def spectrum_row(backend: str, spokes_at_32: int) -> dict:
    """Hermitian error and smallest/largest eigenvalue of the Toeplitz normal as a dense matrix
    on a ``EIGEN_SIDE``^3 grid."""
    shape = (EIGEN_SIDE,) * 3
    coord = radial_3d(spokes_for(EIGEN_SIDE, spokes_at_32), EIGEN_SIDE)
    op = NUFFT(coord, shape, backend=backend)
    voxels = math.prod(shape)
    columns = []
    for start in range(0, voxels, 512):
        basis = torch.zeros(min(512, voxels - start), voxels, dtype=torch.complex64)
        basis[:, start : start + basis.shape[0]] = torch.eye(basis.shape[0])
        columns.append(op.normal(basis.reshape(-1, *shape)).reshape(basis.shape[0], voxels))
    matrix = torch.cat(columns).T.to(torch.complex128)  # column j = T e_j
    hermitian = float((matrix - matrix.conj().T).norm() / matrix.norm())
    eigenvalues = torch.linalg.eigvalsh((matrix + matrix.conj().T) / 2)
    return {
        "backend": backend,
        "hermitian": hermitian,
        "min_over_max_eig": float(eigenvalues[0] / eigenvalues[-1]),
    }


def operator_rows(size: int, spokes_at_32: int, backends: list[str]) -> list[dict]:
    """Part 1: one row per backend (and SigPy's default kernel)."""
    shape = (size,) * 3
    coord = radial_3d(spokes_for(size, spokes_at_32), size)
    exact = NUFFT(coord, shape, backend="dft")
    rows = [operator_row(b, coord, shape, exact) | spectrum_row(b, spokes_at_32) for b in backends]
    if "sigpy" in backends:
        rows.append(sigpy_default_row(coord, shape, exact))
    return rows


def reconstruction_rows(size: int, backends: list[str]) -> list[dict]:
    """Part 2: PSNR of CG-SENSE, L1-wavelet and MBDL on the demo's data, per backend."""
    from blockrecon.inference import reconstruct_with_model
    from blockrecon.models import load_pretrained

    acq = demo.simulate_demo(size)
    model, _, extra = load_pretrained()
    rows = []
    for backend in backends:
        start = time.perf_counter()
        dcf = pipe_menon_dcf(acq.coord, acq.image_shape, backend=backend, progress=False)
        images = {
            "cg": cg_sense(
                acq.kspace, acq.coord, acq.maps, n_iter=20, backend=backend, progress=False
            ),
            "l1": l1_wavelet(
                acq.kspace,
                acq.coord,
                acq.maps,
                lamda=demo.L1_LAMDA,
                n_iter=30,
                weights=dcf,
                backend=backend,
                progress=False,
            ),
            "mbdl": reconstruct_with_model(
                model, acq.kspace, acq.maps, acq.coord, extra, backend=backend
            ),
        }
        row = {"backend": backend, "seconds": time.perf_counter() - start}
        rows.append(row | {f"{k}_psnr_db": psnr(v, acq.image) for k, v in images.items()})
    reference = next((r for r in rows if r["backend"] == "finufft"), rows[0])
    for row in rows:
        for method in ("cg", "l1", "mbdl"):
            row[f"{method}_delta_db"] = row[f"{method}_psnr_db"] - reference[f"{method}_psnr_db"]
    return rows


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_tables(operators: list[dict], recons: list[dict]) -> str:
    """Both parts as plain-text tables."""
    lines = [
        f"{'backend':<14}{'forward':>10}{'adjoint':>10}{'T vs dft':>10}{'T vs pair':>11}"
        f"{'hermitian':>11}{'min/max eig':>13}"
    ]
    for r in operators:
        lines.append(
            f"{r['backend']:<14}{r['forward']:>10.1e}{r['adjoint']:>10.1e}"
            f"{_cell(r.get('toeplitz_vs_dft'), '.1e'):>10}"
            f"{_cell(r.get('toeplitz_vs_pair'), '.1e'):>11}"
            f"{_cell(r.get('hermitian'), '.1e'):>11}"
            f"{_cell(r.get('min_over_max_eig'), '.1e'):>13}"
        )
    if recons:
        lines += [
            "",
            f"{'backend':<10}{'CG-SENSE dB':>13}{'L1 dB':>9}{'MBDL dB':>9}"
            f"{'d CG':>7}{'d L1':>7}{'d MBDL':>8}{'time s':>8}",
        ]
        for r in recons:
            lines.append(
                f"{r['backend']:<10}{r['cg_psnr_db']:>13.2f}{r['l1_psnr_db']:>9.2f}"
                f"{r['mbdl_psnr_db']:>9.2f}{r['cg_delta_db']:>7.2f}"
                f"{r['l1_delta_db']:>7.2f}{r['mbdl_delta_db']:>8.2f}{r['seconds']:>8.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image side N of part 1")
    parser.add_argument(
        "--spokes",
        type=int,
        default=201,
        help="radial spokes at 32^3 (scaled with N^2 at other sizes)",
    )
    parser.add_argument(
        "--demo-size",
        type=int,
        default=48,
        help="image side of part 2, the demo's data (0: skip part 2)",
    )
    parser.add_argument("--quick", action="store_true", help="both parts at 16^3")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.demo_size = EIGEN_SIDE, EIGEN_SIDE
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = list(available_backends("cpu"))
    operators = operator_rows(args.size, args.spokes, backends)
    recons = reconstruction_rows(args.demo_size, backends) if args.demo_size else []
    print(format_tables(operators, recons))
    if args.json is not None:
        write_json(
            args.json,
            {
                "size": args.size,
                "spokes_at_32": args.spokes,
                "demo_size": args.demo_size,
                "operators": operators,
                "reconstructions": recons,
                "numpy": np.__version__,
                "torch": torch.__version__,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
