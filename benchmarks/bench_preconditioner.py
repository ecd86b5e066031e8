"""How many SENSE normal operations does the circulant preconditioner save?

A simulated 3D radial scan (random-ellipsoid phantom, 8 birdcage coils, golden-means kooshball
with readout N, ``--acceleration``-fold angular undersampling, 40 dB k-space noise, as in
``bench_recon.py``) gives ``E^H y``. For each size and each ``lam`` (0: CG-SENSE; the shipped
model's data-consistency ``lam``), ``(E^H E + lam I) x = E^H y`` is solved from zero by plain
CG and by CG preconditioned with :func:`blockrecon.physics.preconditioner.circulant_preconditioner`
(each ``--floors`` value, on the 2x grid and, up to ``--one-x-up-to``, on the image grid).
Recorded per iteration: the relative residual, the NRMSE against the converged solution
(``lam > 0``: preconditioned CG run to a relative residual of ``--reference-tol``) and the
NRMSE against the true image (:func:`blockrecon.recon.nrmse`, inside the object). With
``lam = 0`` the converged least-squares solution is noise-dominated and plain CG is stopped
early on purpose, so only residuals and the NRMSE against the true image are reported.

The shipped model (``--model-sizes``): its data consistency is run as at inference with plain
CG (``--model-cg-iterations``), the input ``z`` of each unroll's CG solve is recorded, and each
solve is replayed from ``z`` with and without the preconditioner against its converged
solution: iterations to reach the NRMSE of the plain solve. The network itself is then run
with the preconditioned data consistency at fewer iterations, without retraining.

Time: one SENSE normal and one application of each preconditioner, interleaved, median of
``--repeats``; the load average is printed with them.

Usage: python benchmarks/bench_preconditioner.py [--quick] [--sizes 32 64 96] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from blockrecon.cli.output import write_json
from blockrecon.physics import Sense, radial_3d, simulate_acquisition
from blockrecon.physics.cg import conjugate_gradient
from blockrecon.physics.preconditioner import DEFAULT_FLOOR, circulant_preconditioner
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.progress import progress_bar
from blockrecon.recon import nrmse

TEST_SEED = 20_000
#: The shipped model's lam when it is not installed (exp of its stored log_lam).
SHIPPED_LAM = 0.0345


def relative(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x - reference).norm() / reference.norm())


def run_cg(system, rhs, n_iter, preconditioner=None, x0=None, reference=None, truth=None):
    """Residual, NRMSE to ``reference`` and to ``truth`` after each of ``n_iter`` iterations
    (index 0: the start)."""
    start = torch.zeros_like(rhs) if x0 is None else x0
    record = {"residual": [float((rhs - system(start)).norm() / rhs.norm())]}
    if reference is not None:
        record["nrmse_reference"] = [relative(start, reference)]
    if truth is not None:
        record["nrmse_truth"] = [nrmse(start, truth) if start.abs().max() > 0 else 1.0]

    def callback(_, x, residual):
        record["residual"].append(residual)
        if reference is not None:
            record["nrmse_reference"].append(relative(x, reference))
        if truth is not None:
            record["nrmse_truth"].append(nrmse(x, truth))

    conjugate_gradient(
        system, rhs, n_iter, x0=x0, progress=False, preconditioner=preconditioner, callback=callback
    )
    return record


def first_at_most(values: list[float], level: float) -> int | None:
    """First iteration whose value is at most ``level`` (``None``: never within the run)."""
    return next((i for i, v in enumerate(values) if v <= level), None)


def methods(args: argparse.Namespace, size: int) -> list[tuple[str, str | None, float | None]]:
    """(name, grid, floor): plain CG first."""
    grids = ["2x"] + (["1x"] if size <= args.one_x_up_to else [])
    found = [("plain", None, None)]
    for grid in grids:
        found += [(f"circulant {grid} floor {f:g}", grid, f) for f in args.floors]
    return found


def summarize(record: dict, plain: dict, key: str, checkpoints: list[int]) -> dict:
    """Iterations to residuals and to plain CG's error at ``checkpoints`` iterations."""
    out = {
        f"iterations_to_residual_{t:g}": first_at_most(record["residual"], t) for t in (1e-2, 1e-3)
    }
    if key in record:
        for k in checkpoints:
            if k < len(plain[key]):
                out[f"iterations_to_plain_{k}"] = first_at_most(record[key], plain[key][k])
    return out


def simulate(args: argparse.Namespace, size: int):
    """The benchmark's scan of a random-ellipsoid phantom at ``size``^3 (``args``: coils,
    acceleration, SNR, seed)."""
    coord = radial_3d(radial_spokes(size, args.acceleration), size)
    return simulate_acquisition(
        coord,
        (size,) * 3,
        n_coils=args.coils,
        phantom="ellipsoids",
        snr_db=args.snr,
        seed=args.seed,
    )


def solves(args: argparse.Namespace, size: int, lams: list[float]) -> tuple[list[dict], dict]:
    acq = simulate(args, size)
    op = Sense(acq.maps, acq.coord)
    aty = op.normal_rhs(acq.kspace)
    rows = []
    cost = timing(args, op, aty)
    for lam in lams:

        def system(v, lam=lam):
            return op.normal(v) + lam * v

        reference = None
        if lam > 0:
            started = time.perf_counter()
            reference = conjugate_gradient(
                system,
                aty,
                args.reference_iterations,
                args.reference_tol,
                progress=False,
                preconditioner=circulant_preconditioner(op).shifted(lam),
            )
            residual = float((system(reference) - aty).norm() / aty.norm())
            print(
                f"  {size}^3 lam={lam:g}: reference at residual {residual:.1e}, "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
        plain = None
        for name, grid, floor in progress_bar(methods(args, size), f"{size}^3 lam={lam:g}"):
            preconditioner = None
            if grid is not None:
                preconditioner = circulant_preconditioner(op, grid=grid, floor=floor).shifted(lam)
            record = run_cg(
                system, aty, args.iterations, preconditioner, reference=reference, truth=acq.image
            )
            plain = plain or record
            key = "nrmse_reference" if reference is not None else "nrmse_truth"
            rows.append(
                {"size": size, "lam": lam, "method": name, "grid": grid, "floor": floor}
                | summarize(record, plain, key, args.checkpoints)
                | record
            )
    return rows, cost


def timing(args: argparse.Namespace, op: Sense, aty: torch.Tensor) -> dict:
    """Median seconds of one normal and one preconditioner application, interleaved."""
    started = time.perf_counter()
    built = {grid: circulant_preconditioner(op, grid=grid).shifted(0.05) for grid in ("2x", "1x")}
    build = time.perf_counter() - started  # includes the Toeplitz kernel if not built yet
    calls = {"normal": op.normal} | {f"circulant {g}": f for g, f in built.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, fn in calls.items():
            started = time.perf_counter()
            fn(aty)
            times[name].append(time.perf_counter() - started)
    result = {f"{name}_s": statistics.median(t) for name, t in times.items()}
    return result | {"build_s": build, "load_average": os.getloadavg()[0]}


def model_lam() -> float:
    try:
        from blockrecon.models import load_pretrained

        return load_pretrained().model.dcs[0].lam.item()
    except FileNotFoundError:
        return SHIPPED_LAM


def model_study(args: argparse.Namespace, size: int) -> dict | None:
    """The shipped model's CG solves replayed with and without the preconditioner."""
    from blockrecon.inference import load_for_inference, reconstruct_with_model

    patch = min(args.model_patch, size // 2)
    try:
        model, _, extra = load_for_inference(
            image_shape=(size,) * 3, patch_size=patch, cg_iterations=args.model_cg_iterations
        )
    except FileNotFoundError:
        return None
    acq = simulate(args, size)
    dc = model.dcs[0]
    captured = []
    hook = dc.register_forward_pre_hook(lambda _, a: captured.append([t for t in a[:3]]))
    started = time.perf_counter()
    plain_image = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra)
    plain_seconds = time.perf_counter() - started
    hook.remove()
    lam = dc.lam.item()
    n = args.model_cg_iterations
    per_unroll = []
    for unroll, (z, aty, op) in enumerate(captured if args.model_replay else []):

        def system(v, op=op):
            return op.normal(v) + lam * v

        rhs = aty + lam * z
        reference = conjugate_gradient(
            system,
            rhs,
            args.reference_iterations,
            args.reference_tol,
            x0=z,
            progress=False,
            preconditioner=circulant_preconditioner(op).shifted(lam),
        )
        entry = {"unroll": unroll}
        plain = run_cg(system, rhs, args.iterations, x0=z, reference=reference)
        entry["plain"] = plain["nrmse_reference"]
        for floor in args.floors:
            pre = circulant_preconditioner(op, floor=floor).shifted(lam)
            record = run_cg(system, rhs, args.iterations, pre, x0=z, reference=reference)
            entry[f"circulant 2x floor {floor:g}"] = record["nrmse_reference"]
            entry[f"iterations_to_plain_{n}_floor_{floor:g}"] = first_at_most(
                record["nrmse_reference"], plain["nrmse_reference"][n]
            )
        per_unroll.append(entry)
    images = [
        {
            "method": f"plain CG {n}",
            "nrmse": nrmse(plain_image, acq.image),
            "seconds": plain_seconds,
        }
    ]
    runs = [(None, n, f"plain CG {n}") for n in args.model_plain_iterations]
    runs += [
        ("circulant", n, f"circulant CG {n} (floor {DEFAULT_FLOOR:g})")
        for n in args.model_precond_iterations
    ]
    for preconditioner, iterations, method in runs:
        dc.preconditioner, dc.n_iter = preconditioner, iterations
        started = time.perf_counter()
        image = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra)
        seconds = time.perf_counter() - started
        images.append({"method": method, "nrmse": nrmse(image, acq.image), "seconds": seconds})
    return {"size": size, "lam": lam, "cg_iterations": n, "solves": per_unroll, "images": images}


def format_solves(rows: list[dict], checkpoints: list[int]) -> str:
    header = (
        f"{'size':>5} {'lam':>7} {'method':<24}{'it->1e-2':>9}{'it->1e-3':>9}"
        + "".join(f"{'err@' + str(k):>9}" for k in checkpoints)
        + "".join(f"{'->plain@' + str(k):>11}" for k in checkpoints)
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        key = "nrmse_reference" if row["lam"] > 0 else "nrmse_truth"
        cells = [
            f"{row['size']:>5} {row['lam']:>7.4g} {row['method']:<24}",
            f"{_cell(row['iterations_to_residual_0.01']):>9}",
            f"{_cell(row['iterations_to_residual_0.001']):>9}",
        ]
        cells += [f"{row[key][k]:>9.4f}" if k < len(row[key]) else f"{'':>9}" for k in checkpoints]
        cells += [f"{_cell(row.get(f'iterations_to_plain_{k}')):>11}" for k in checkpoints]
        lines.append("".join(cells))
    return "\n".join(lines)


def _cell(value: int | None) -> str:
    return ">max" if value is None else str(value)


def format_model(study: dict) -> str:
    n = study["cg_iterations"]
    lines = [f"shipped model at {study['size']}^3, lam={study['lam']:.4g}, plain CG {n} per unroll"]
    for entry in study["solves"]:
        cells = [f"  unroll {entry['unroll']}: plain@{n} error {entry['plain'][n]:.4f}"]
        cells += [
            f"{k.split('_floor_')[1]}: {_cell(v)} it"
            for k, v in entry.items()
            if k.startswith("iterations_to_plain")
        ]
        lines.append("; floor ".join(cells))
    for image in study["images"]:
        lines.append(
            f"  {image['method']:<18} NRMSE {image['nrmse']:.4f}  {image['seconds']:.1f} s"
        )
    return "\n".join(lines)


def figure(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in rows})
    lams = sorted({r["lam"] for r in rows}, reverse=True)
    fig, axes = plt.subplots(
        len(lams), len(sizes), figsize=(4 * len(sizes), 3.2 * len(lams)), squeeze=False
    )
    for i, lam in enumerate(lams):
        for j, size in enumerate(sizes):
            ax = axes[i][j]
            key = "nrmse_reference" if lam > 0 else "nrmse_truth"
            for row in rows:
                if row["size"] == size and row["lam"] == lam:
                    ax.semilogy(row[key], label=row["method"], lw=2 if row["grid"] is None else 1.2)
            ax.set_title(f"{size}^3, lam={lam:g}")
            ax.set_xlabel("iteration (SENSE normals)")
            ax.set_ylabel("NRMSE to converged" if lam > 0 else "NRMSE to true image")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 24^3 smoke run")
    parser.add_argument("--sizes", type=int, nargs="*", default=[32, 64, 96])
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=8.0)
    parser.add_argument("--snr", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=TEST_SEED, help="phantom and noise seed")
    parser.add_argument("--lams", type=float, nargs="+", default=None, help="default: 0, model's")
    parser.add_argument("--floors", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--one-x-up-to", type=int, default=64, help="largest size run on 1x")
    parser.add_argument("--iterations", type=int, default=24)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[4, 6, 12, 24])
    parser.add_argument("--reference-tol", type=float, default=1e-6)
    parser.add_argument("--reference-iterations", type=int, default=300)
    parser.add_argument("--model-sizes", type=int, nargs="*", default=[32, 64])
    parser.add_argument("--model-cg-iterations", type=int, default=12)
    parser.add_argument("--model-precond-iterations", type=int, nargs="+", default=[3, 4, 6])
    parser.add_argument("--model-plain-iterations", type=int, nargs="*", default=[6, 24])
    parser.add_argument("--model-patch", type=int, default=32)
    parser.add_argument(
        "--model-replay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replay the model's CG solves (--no-model-replay: run the network only)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/bench_preconditioner.json")
    )
    parser.add_argument("--figure", type=Path, default=None, help="default: next to the JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.model_sizes, args.iterations = [24], [24], 12
        args.checkpoints = [4, 6, 12]
    torch.set_num_threads(args.threads)
    lams = args.lams if args.lams is not None else [0.0, model_lam()]
    rows, costs, studies = [], {}, []
    for size in args.sizes:
        print(f"{size}^3 (load average {os.getloadavg()[0]:.1f})", file=sys.stderr)
        found, costs[size] = solves(args, size, lams)
        rows += found
    for size in args.model_sizes:
        study = model_study(args, size)
        if study is not None:
            studies.append(study)
    print(format_solves(rows, args.checkpoints))
    for size, cost in costs.items():
        print(
            f"{size}^3: normal {cost['normal_s']:.3f} s, circulant 2x {cost['circulant 2x_s']:.3f}"
            f" s, 1x {cost['circulant 1x_s']:.3f} s, build {cost['build_s']:.2f} s"
            f" (load average {cost['load_average']:.1f})"
        )
    for study in studies:
        print(format_model(study))
    meta = {
        "setting": {"coils": args.coils, "acceleration": args.acceleration, "snr_db": args.snr},
        "lams": lams,
        "threads": args.threads,
        "seed": args.seed,
        "reference_tol": args.reference_tol,
        "load_average": os.getloadavg()[0],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"meta": meta, "solves": rows, "cost": costs, "model": studies})
    if not rows:
        print(f"wrote {args.json}", file=sys.stderr)
        return 0
    path = args.figure or args.json.with_suffix(".png")
    figure(path, rows)
    print(f"wrote {args.json} and {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
