"""Is MBDL better and faster than compressed sensing? Image quality, time and memory per method.

A simulated multi-coil 3D radial scan (random-ellipsoid phantom, birdcage coils, golden-means
kooshball with readout N, ``--acceleration``-fold angular undersampling, k-space noise at
``--snr`` dB, simulated from a 2x finer grid) is reconstructed by

* gridding (Pipe-Menon density compensation, counted in its time), CG-SENSE (20 iterations);
* L1-wavelet CS (FISTA, density weights) with 30 and 100 iterations, its lambda chosen on a
  separate tuning volume (another phantom seed) as the lowest NRMSE over ``--lambdas`` at 30
  iterations;
* SigPy's ``L1WaveletRecon`` (NUFFT pairs; the same objective as ours, so the same lambda)
  with ``--sigpy-iterations``, the CS baseline of the block-wise MBDL paper;
* BART ``pics -e -l1`` (when the ``bart`` program is installed), 30 and 100 iterations, its own
  lambda tuned the same way on the tuning volume; the true coil maps are given to BART as .cfl;
* the shipped block-wise MBDL model (:func:`blockrecon.models.load_pretrained`, data prepared
  as it was trained; normalization counted in its time), when it is installed, on
  ``--mbdl-patch`` cores. Its CG data-consistency iterations are tuned on the tuning volume like
  the lambdas (``--mbdl-iterations``, default: the trained number and the 3 above it): radial
  ``E^H E`` is worse conditioned at larger sizes, so the iterations of its 32^3 training solve
  less of a 96^3 problem, while too many fit noise.

The Pipe-Menon weights are computed once, in the gridding row's time, and reused by L1-wavelet
CS and by an MBDL model that takes density weights.

Every method gets the true coil maps. Metrics (:mod:`blockrecon.recon.metrics`): PSNR and SSIM
over the volume, NRMSE inside the object. Time is wall time; memory is the increase of this
process's resident high-water mark during the method (BART: the whole ``bart`` process's peak).

Usage: python benchmarks/bench_recon.py [--quick] [--size N] [--json PATH] [--figure PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from blockrecon import demo
from blockrecon.cli.output import write_json
from blockrecon.memory import MMAP_THRESHOLD, peak_rss
from blockrecon.physics import Acquisition, pipe_menon_dcf, radial_3d, simulate_acquisition
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.recon import cg_sense, grid_recon, l1_wavelet, nrmse

TEST_SEED, TUNING_SEED = 20_000, 20_001
CS_TUNING_ITERATIONS = 30


def simulate(size: int, coils: int, acceleration: float, snr_db: float, seed: int) -> Acquisition:
    """The benchmark's scan of one random-ellipsoid phantom (see the module docstring)."""
    coord = radial_3d(radial_spokes(size, acceleration), size)
    return simulate_acquisition(
        coord, (size,) * 3, n_coils=coils, phantom="ellipsoids", snr_db=snr_db, seed=seed
    )


def object_nrmse(image: torch.Tensor, acq: Acquisition) -> float:
    return nrmse(image, acq.image, mask=demo.object_mask(acq.image))


# --- BART -------------------------------------------------------------------------------------


def write_cfl(stem: Path, array: np.ndarray) -> None:
    """BART .hdr/.cfl pair: complex64, column-major (first axis fastest)."""
    array = np.asarray(array, dtype=np.complex64)
    stem.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(map(str, array.shape)) + "\n")
    array.T.tofile(stem.with_suffix(".cfl"))


def read_cfl(stem: Path) -> np.ndarray:
    dims = [int(d) for d in stem.with_suffix(".hdr").read_text().splitlines()[1].split()]
    return np.fromfile(stem.with_suffix(".cfl"), dtype=np.complex64).reshape(dims[::-1]).T


class Bart:
    """BART ``pics`` on one acquisition. Our axes 0, 1, 2 are BART's dimensions 0, 1, 2 (the
    NUFFT sign and centre conventions agree, checked against ``bart nufft``): trajectory
    ``(3, readout, spokes)`` in grid units, k-space ``(1, readout, spokes, coils)``, maps
    ``(N0, N1, N2, coils)``."""

    def __init__(self, acq: Acquisition, folder: Path, threads: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.shape, self.threads = folder, acq.image_shape, threads
        write_cfl(folder / "traj", acq.coord.permute(2, 1, 0).numpy())
        write_cfl(folder / "ksp", acq.kspace.permute(2, 1, 0).numpy()[None])
        write_cfl(folder / "sens", acq.maps.permute(1, 2, 3, 0).numpy())

    def command(self, lamda: float, n_iter: int) -> list[str]:
        """``bart pics`` with ``--threads`` OpenMP threads, its iteration log discarded (the
        shell execs bart, so the measured process is bart itself)."""
        files = [shlex.quote(str(self.folder / name)) for name in ("traj", "ksp", "sens", "out")]
        pics = (
            f"OMP_NUM_THREADS={self.threads} exec bart pics -S -e -l1 -r {lamda:g} "
            f"-i {n_iter} -t {' '.join(files)} > /dev/null"
        )
        return ["sh", "-c", pics]

    def pics(self, lamda: float, n_iter: int) -> demo.MethodResult:
        """Run ``bart pics``; wall time of the process and its peak RSS."""
        start = time.perf_counter()
        peak = peak_rss(self.command(lamda, n_iter)).peak
        seconds = time.perf_counter() - start
        image = torch.from_numpy(read_cfl(self.folder / "out").reshape(self.shape).copy())
        return demo.MethodResult(f"BART pics {n_iter}", image, seconds, peak)


# --- methods ----------------------------------------------------------------------------------


def tune(
    candidates: list, run, acq: Acquisition, name: str = "lambda"
) -> tuple[float, dict[str, float]]:
    """The candidate (a lambda, an iteration count) of lowest object NRMSE on the tuning
    acquisition, and every NRMSE."""
    scores = {}
    for value in candidates:
        scores[f"{value:g}"] = object_nrmse(run(value), acq)
        print(f"  {name} {value:g}: NRMSE {scores[f'{value:g}']:.4f}", file=sys.stderr)
    best = min(candidates, key=lambda value: scores[f"{value:g}"])
    if len(candidates) > 1 and best in (min(candidates), max(candidates)):
        print(
            f"  warning: the best {name} {best:g} is at the edge of the sweep; a wider sweep "
            "may find a better one",
            file=sys.stderr,
        )
    return best, scores


def sigpy_l1_wavelet(
    acq: Acquisition, weights: torch.Tensor, lamda: float, n_iter: int
) -> torch.Tensor:
    """SigPy's own L1-wavelet CS (``sigpy.mri.app.L1WaveletRecon``: NUFFT pairs, 30 power
    iterations for its step, then ``n_iter`` accelerated proximal-gradient iterations, db4).
    Its objective, ``1/2 ||W^(1/2)(E x - y)||^2 + lamda ||Psi x||_1`` with unitary NUFFTs, is
    that of :func:`~blockrecon.recon.l1_wavelet`, so it takes the lambda tuned for ours."""
    from sigpy.mri.app import L1WaveletRecon

    recon = L1WaveletRecon(
        acq.kspace.numpy(),
        acq.maps.numpy(),
        lamda,
        weights=weights.numpy(),
        coord=acq.coord.numpy(),
        max_iter=n_iter,
        show_pbar=False,
    )
    return torch.from_numpy(recon.run()).to(torch.complex64)


def load_mbdl(patch: int, cg_iterations: int | None = None):
    """The shipped model applied on ``patch``-sized cores (exact at any patch size) with its CG
    data consistency run for ``cg_iterations`` (``None``: as trained), its configuration and
    metadata; or ``None`` and the reason when it is not installed."""
    from blockrecon.inference import load_for_inference

    try:
        return load_for_inference(patch_size=patch, cg_iterations=cg_iterations), ""
    except FileNotFoundError as err:
        return None, str(err)


def mbdl_run(loaded: tuple, acq: Acquisition, dcf: torch.Tensor | None = None):
    """A callable applying a loaded model to ``acq`` (data prepared as it was trained; a model
    that takes density weights gets ``dcf``)."""
    from blockrecon.inference import reconstruct_with_model

    model, _, extra = loaded
    model.regularizers[0].plan(acq.image_shape)
    return lambda: reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra, dcf=dcf)


def _with_mmap_threshold() -> None:
    """Re-run this script with ``MALLOC_MMAP_THRESHOLD_`` set (glibc reads it at start-up), so
    that freed large buffers go back to the system and each method's peak-RSS increase is its
    own (see :mod:`blockrecon.memory`)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MMAP_THRESHOLD:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 40^3 smoke run")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=8.0)
    parser.add_argument("--snr", type=float, default=40.0, help="k-space SNR in dB")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1e-2, 3e-2, 1e-1])
    parser.add_argument("--bart-lambdas", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4])
    parser.add_argument("--iterations", type=int, nargs="+", default=[30, 100])
    parser.add_argument(
        "--mbdl-iterations",
        type=int,
        nargs="+",
        default=None,
        help="CG iterations of the MBDL data consistency to tune (default: the trained "
        "number and the 3 above it)",
    )
    parser.add_argument(
        "--mbdl-patch",
        type=int,
        default=48,
        help="block-wise core size of MBDL at inference (exact at any size)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-bart", action="store_true")
    parser.add_argument(
        "--sigpy-iterations",
        type=int,
        nargs="+",
        default=[30],
        help="iterations of SigPy's L1WaveletRecon rows",
    )
    parser.add_argument("--no-sigpy", action="store_true", help="leave out SigPy's rows")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_recon.json"))
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="PNG of slices and error maps (default: next to the JSON)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.mbdl_patch = 40, 20
    torch.set_num_threads(args.threads)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    setting = (args.size, args.coils, args.acceleration, args.snr)
    print(
        f"Simulating {args.size}^3, {args.coils} coils, {args.acceleration:g}x, "
        f"{args.snr:g} dB (test seed {TEST_SEED}, tuning seed {TUNING_SEED})",
        file=sys.stderr,
    )
    acq, tuning = simulate(*setting, TEST_SEED), simulate(*setting, TUNING_SEED)
    use_bart = shutil.which("bart") is not None and not args.no_bart
    with tempfile.TemporaryDirectory() as tmp:
        bart = Bart(acq, Path(tmp) / "test", args.threads) if use_bart else None
        meta = {
            "setting": dict(zip(("size", "coils", "acceleration", "snr_db"), setting, strict=True)),
            "spokes": int(acq.coord.shape[0]),
            "readout": int(acq.coord.shape[1]),
            "threads": args.threads,
            "seeds": {"test": TEST_SEED, "tuning": TUNING_SEED},
        }
        meta["tuning"] = tune_all(args, tuning, Path(tmp), use_bart)
        methods = test_methods(args, acq, meta, bart)
        results = []
        for name, fn in methods.items():
            print(f"Running {name}", file=sys.stderr)
            results.append(fn() if name.startswith("BART") else demo.timed(name, fn))
    rows = demo.quality_rows(results, acq.image)
    print(demo.format_table(rows))
    meta["ratios"] = ratios(rows)
    for line in meta["ratios"].get("summary", []):
        print(line)
    write_json(args.json, {"meta": meta, "rows": rows})
    figure = args.figure or args.json.with_suffix(".png")
    demo.save_figure(figure, acq.image, results)
    print(f"wrote {args.json} and {figure}", file=sys.stderr)
    return 0


def tune_all(args: argparse.Namespace, tuning: Acquisition, tmp: Path, use_bart: bool) -> dict:
    """Sweeps on the tuning volume: lambda of our L1-wavelet CS and of BART, CG iterations of
    the MBDL model's data consistency."""
    dcf = pipe_menon_dcf(tuning.coord, tuning.image_shape, progress=False)
    print("Tuning L1-wavelet lambda", file=sys.stderr)
    best, scores = tune(
        args.lambdas,
        lambda lamda: l1_wavelet(
            tuning.kspace,
            tuning.coord,
            tuning.maps,
            lamda=lamda,
            n_iter=CS_TUNING_ITERATIONS,
            weights=dcf,
            progress=False,
        ),
        tuning,
    )
    result = {"iterations": CS_TUNING_ITERATIONS, "l1_wavelet": {"best": best, "nrmse": scores}}
    if use_bart:
        print("Tuning BART pics lambda", file=sys.stderr)
        bart = Bart(tuning, tmp / "tuning", args.threads)
        best, scores = tune(
            args.bart_lambdas, lambda lamda: bart.pics(lamda, CS_TUNING_ITERATIONS).image, tuning
        )
        result["bart"] = {"best": best, "nrmse": scores}
    loaded = load_mbdl(args.mbdl_patch)[0]
    if loaded is not None and loaded[1]["dc"]["kind"] == "cg":
        print("Tuning the MBDL data-consistency CG iterations", file=sys.stderr)
        trained = loaded[1]["dc"]["n_iter"]
        best, scores = tune(
            args.mbdl_iterations or list(range(trained, trained + 4)),
            lambda n: mbdl_run(load_mbdl(args.mbdl_patch, n)[0], tuning, dcf)(),
            tuning,
            "CG iterations",
        )
        result["mbdl"] = {"best": best, "nrmse": scores}
    return result


def test_methods(args: argparse.Namespace, acq: Acquisition, meta: dict, bart: Bart | None) -> dict:
    """Name -> callable returning the image (BART: returning a MethodResult)."""
    dcf: dict[str, torch.Tensor] = {}

    def grid() -> torch.Tensor:
        dcf["w"] = pipe_menon_dcf(acq.coord, acq.image_shape, progress=False)
        return grid_recon(acq.kspace, acq.coord, acq.maps, dcf=dcf["w"], progress=False)

    def l1(n_iter: int):
        lamda = meta["tuning"]["l1_wavelet"]["best"]
        return lambda: l1_wavelet(
            acq.kspace,
            acq.coord,
            acq.maps,
            lamda=lamda,
            n_iter=n_iter,
            weights=dcf["w"],
            progress=False,
        )

    methods = {
        "gridding": grid,
        "CG-SENSE": lambda: cg_sense(acq.kspace, acq.coord, acq.maps, n_iter=20, progress=False),
    }
    methods.update({f"L1-wavelet {n}": l1(n) for n in args.iterations})
    if not args.no_sigpy:
        lamda = meta["tuning"]["l1_wavelet"]["best"]
        methods.update(
            {
                f"SigPy L1-wavelet {n}": (lambda n=n: sigpy_l1_wavelet(acq, dcf["w"], lamda, n))
                for n in args.sigpy_iterations
            }
        )
    if bart is not None:
        lamda = meta["tuning"]["bart"]["best"]
        methods.update(
            {f"BART pics {n}": (lambda n=n: bart.pics(lamda, n)) for n in args.iterations}
        )
    loaded, reason = load_mbdl(args.mbdl_patch, meta["tuning"].get("mbdl", {}).get("best"))
    if loaded is None:
        print(f"MBDL skipped: {reason}", file=sys.stderr)
        return methods
    _, config, extra = loaded
    meta["mbdl"] = {
        "config": config,
        "training": {k: v for k, v in extra.items() if isinstance(v, (int, float, str))},
    }
    # the gridding row, run first, has computed the weights by the time this runs
    methods["MBDL"] = lambda: mbdl_run(loaded, acq, dcf["w"])()
    return methods


def ratios(rows: list[dict]) -> dict:
    """MBDL against each L1-wavelet run: time ratio (CS / MBDL), PSNR and SSIM differences,
    NRMSE ratio (MBDL / CS)."""
    by_name = {row["method"]: row for row in rows}
    if "MBDL" not in by_name:
        return {}
    mbdl = by_name["MBDL"]
    out: dict = {"summary": []}
    for name, row in by_name.items():
        if not name.startswith(("L1-wavelet", "SigPy", "BART")):
            continue
        entry = {
            "time_cs_over_mbdl": row["seconds"] / mbdl["seconds"],
            "psnr_mbdl_minus_cs_db": mbdl["psnr_db"] - row["psnr_db"],
            "ssim_mbdl_minus_cs": mbdl["ssim"] - row["ssim"],
            "nrmse_mbdl_over_cs": mbdl["nrmse"] / row["nrmse"],
        }
        out[name] = entry
        out["summary"].append(
            f"MBDL vs {name}: {entry['time_cs_over_mbdl']:.2f}x faster, PSNR "
            f"{entry['psnr_mbdl_minus_cs_db']:+.2f} dB, SSIM {entry['ssim_mbdl_minus_cs']:+.3f}, "
            f"NRMSE x{entry['nrmse_mbdl_over_cs']:.2f}"
        )
    return out


if __name__ == "__main__":
    _with_mmap_threshold()
    sys.exit(main())
