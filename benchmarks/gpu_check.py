"""GPU readiness: NUFFT accuracy, CPU/CUDA agreement, training-step memory and speed on CUDA.

Runs on a CUDA device (exits 2 with one line on stderr when there is none) and prints one row
per check (check, NUFFT backend, value, target, pass) and writes them as JSON. Each row runs on
its own: an exception fails that row (its type and message are recorded) and the others go on.

* NUFFT, for each CUDA backend installed (:func:`blockrecon.physics.available_backends`,
  or ``--backends``), on a ``--dft-size``^3 image and ``--samples`` random coordinates, complex64:
  adjointness ``|<A x, y> - <x, A^H y>| / (|A x| |y|)`` and the relative error of forward and
  adjoint against the exact DFT (the ``"dft"`` backend in complex128, on the device);
* the Toeplitz SENSE normal ``E^H E`` (:meth:`blockrecon.physics.Sense.normal`, 4 birdcage
  coils) against the exact-DFT normal, relative error;
* CG-SENSE (20 iterations) and the shipped MBDL model on the demo's Shepp-Logan acquisition at
  ``--recon-size``^3: PSNR on the device minus PSNR of the same on the CPU with FINUFFT;
* peak CUDA memory of one block-wise training step (:func:`blockrecon.step_memory.memory_table`,
  ``--memory-size``^3, 8 coils, 5 unrolls, each of ``--patches`` and full backpropagation) over
  its meta-device estimate (torch's allocator only: CuPy's pool, the NUFFT workspace of SigPy and
  cuFINUFFT, is not in the peak);
* speed-up of MBDL inference on the device (after one warm-up run, synchronized) over
  L1-wavelet CS (30 iterations, Pipe-Menon weights computed beforehand) on the CPU, demo
  acquisition at ``--timing-size``^3.

A row's time includes preparing what it shares with later rows (the acquisition, the CPU
reference, the memory table), so the first row of a group is the slowest. The exit status is 0
when every check passed, 1 otherwise. A hidden ``--device cpu`` runs the same logic on the CPU
(the CPU against itself), which is how the tests check the script.

Usage: python benchmarks/gpu_check.py [--quick] [--json PATH] [--backends NAME ...]
           [--dft-size N] [--samples M] [--recon-size N] [--memory-size N] [--patches P ...]
           [--timing-size N]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from bench_nufft_accuracy import random_pair, relative_error

from blockrecon.cli.output import write_json
from blockrecon.demo import L1_LAMDA, simulate_demo
from blockrecon.inference import load_for_inference, reconstruct_with_model
from blockrecon.memory_report import MIB
from blockrecon.physics import (
    NUFFT,
    Acquisition,
    Sense,
    available_backends,
    birdcage_maps,
    pipe_menon_dcf,
)
from blockrecon.recon import cg_sense, l1_wavelet, psnr
from blockrecon.step_memory import FIT_MARGIN, StepProblem, memory_table
from blockrecon.torch_file import LoadedModel

#: Largest relative error of a NUFFT or Toeplitz normal against the exact DFT, and of the
#: adjointness, for backends to be mixed (see the NUFFT tests' tolerances).
ACCURACY_TARGET = 1e-4
#: Largest PSNR difference (dB) between a reconstruction on the device and on the CPU.
PSNR_DELTA_TARGET = 0.1
TOEPLITZ_COILS = 4
CG_ITERATIONS = 20
CS_ITERATIONS = 30
#: Largest MBDL core at the timing size (exact at any core size; larger is faster).
TIMING_PATCH = 48
#: The CPU reference's NUFFT backend.
REFERENCE_BACKEND = "finufft"


@dataclass(frozen=True)
class Target:
    """A pass condition on a value: ``value <= bound``, ``value >= bound`` or
    ``|value| <= bound``."""

    op: str
    bound: float

    def met(self, value: float) -> bool:
        """Whether a finite ``value`` meets the condition."""
        if not math.isfinite(value):
            return False
        if self.op == ">=":
            return value >= self.bound
        return (abs(value) if self.op == "|x|<=" else value) <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass
class Row:
    """One check's result; ``value`` is None and ``error`` set when the check raised."""

    check: str
    backend: str
    value: float | None
    target: str
    passed: bool
    seconds: float
    note: str = ""
    error: str | None = None


#: What a check measures: its value and a note for the table.
Measure = Callable[[], tuple[float, str]]


def run_check(check: str, backend: str, target: Target, measure: Measure) -> Row:
    """Run ``measure``, timed; an exception becomes a failed row naming it."""
    print(f"running {check} ({backend})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        value, note = measure()
    except Exception as err:  # noqa: BLE001 - one failing check must not stop the others
        return Row(
            check,
            backend,
            None,
            str(target),
            False,
            time.perf_counter() - start,
            error=f"{type(err).__name__}: {err}",
        )
    return Row(
        check, backend, value, str(target), target.met(value), time.perf_counter() - start, note
    )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """``fn()`` and its wall time, the device synchronized before and after."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


# --- a, b: NUFFT and Toeplitz normal against the exact DFT ------------------------------------


@dataclass
class NufftProblem:
    """Random coordinates in ``[-N/2, N/2)``, an image and k-space (complex64) on a device."""

    coord: torch.Tensor
    image: torch.Tensor
    kspace: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape)

    def exact(self) -> NUFFT:
        """The exact transform (``"dft"`` backend; complex128 on complex128 inputs)."""
        return NUFFT(self.coord, self.image_shape, backend="dft")


@functools.cache
def nufft_problem(size: int, samples: int, device: torch.device) -> NufftProblem:
    """The seeded NUFFT test problem (built once per setting)."""
    coord = (torch.rand(samples, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * size
    image, kspace = random_pair((size,) * 3, samples, seed=1)
    return NufftProblem(coord.to(device), image.to(device), kspace.to(device))


def inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    """``<a, b> = sum(conj(a) b)`` in complex128."""
    return complex(
        torch.vdot(a.reshape(-1).to(torch.complex128), b.reshape(-1).to(torch.complex128))
    )


def nufft_adjointness(problem: NufftProblem, backend: str) -> tuple[float, str]:
    """``|<A x, y> - <x, A^H y>| / (|A x| |y|)``."""
    op = NUFFT(problem.coord, problem.image_shape, backend=backend)
    ax, y = op(problem.image), problem.kspace
    gap = abs(inner(ax, y) - inner(problem.image, op.adjoint(y)))
    return gap / float(ax.norm() * y.norm()), ""


def nufft_forward_error(problem: NufftProblem, backend: str) -> tuple[float, str]:
    """Relative error of ``A x`` against the exact DFT."""
    op = NUFFT(problem.coord, problem.image_shape, backend=backend)
    exact = problem.exact()(problem.image.to(torch.complex128))
    return relative_error(op(problem.image), exact), ""


def nufft_adjoint_error(problem: NufftProblem, backend: str) -> tuple[float, str]:
    """Relative error of ``A^H y`` against the exact DFT."""
    op = NUFFT(problem.coord, problem.image_shape, backend=backend)
    exact = problem.exact().adjoint(problem.kspace.to(torch.complex128))
    return relative_error(op.adjoint(problem.kspace), exact), ""


def toeplitz_error(problem: NufftProblem, backend: str) -> tuple[float, str]:
    """Relative error of the Toeplitz SENSE normal against ``sum_c S_c^H A^H A S_c``, exact."""
    maps = birdcage_maps(TOEPLITZ_COILS, problem.image_shape).to(problem.coord.device)
    sense = Sense(maps, problem.coord, backend=backend)
    maps = maps.to(torch.complex128)
    dft = problem.exact()
    exact = (maps.conj() * dft.adjoint(dft(maps * problem.image))).sum(0)
    return relative_error(sense.normal(problem.image), exact), f"{TOEPLITZ_COILS} coils"


def nufft_rows(args: argparse.Namespace, device: torch.device, backend: str) -> list[Row]:
    """Adjointness, forward/adjoint accuracy and Toeplitz normal accuracy of one backend."""
    target = Target("<=", ACCURACY_TARGET)
    checks = {
        "nufft adjointness": nufft_adjointness,
        "nufft forward vs DFT": nufft_forward_error,
        "nufft adjoint vs DFT": nufft_adjoint_error,
        "toeplitz normal vs DFT": toeplitz_error,
    }
    return [
        run_check(
            name,
            backend,
            target,
            lambda fn=fn: fn(nufft_problem(args.dft_size, args.samples, device), backend),
        )
        for name, fn in checks.items()
    ]


# --- c: reconstructions on the device against the CPU -----------------------------------------


@functools.cache
def demo_acquisition(size: int) -> Acquisition:
    """The demo's Shepp-Logan acquisition at ``size``^3 (CPU, built once per size)."""
    return simulate_demo(size=size)


def cg_method(acq: Acquisition, device: torch.device, backend: str) -> torch.Tensor:
    """CG-SENSE of ``acq`` on ``device`` with ``backend``."""
    return cg_sense(
        acq.kspace.to(device),
        acq.coord.to(device),
        acq.maps.to(device),
        n_iter=CG_ITERATIONS,
        backend=backend,
        progress=False,
    )


@functools.cache
def shipped_model(device: torch.device, patch: int | None) -> LoadedModel:
    """The shipped model on ``device`` with core size ``patch`` (``None``: as trained), read and
    built once per setting, so that timed runs time the reconstruction only."""
    return load_for_inference(device=device, patch_size=patch)


def mbdl_method(
    acq: Acquisition, device: torch.device, backend: str, patch: int | None = None
) -> torch.Tensor:
    """The shipped MBDL model on ``acq`` on ``device`` (``patch``: its core size, ``None``: as
    trained)."""
    model, _, extra = shipped_model(device, patch)
    return reconstruct_with_model(
        model,
        acq.kspace.to(device),
        acq.maps.to(device),
        acq.coord.to(device),
        extra,
        backend=backend,
    )


RECON_METHODS = {"CG-SENSE": cg_method, "MBDL": mbdl_method}


@functools.cache
def cpu_reference_psnr(method: str, size: int) -> float:
    """PSNR of ``method`` on the CPU with the reference backend (computed once)."""
    acq = demo_acquisition(size)
    image = RECON_METHODS[method](acq, torch.device("cpu"), REFERENCE_BACKEND)
    return psnr(image, acq.image)


def psnr_delta(method: str, size: int, device: torch.device, backend: str) -> tuple[float, str]:
    """PSNR of ``method`` on ``device`` minus the CPU reference's, and both in a note."""
    acq = demo_acquisition(size)
    reference = cpu_reference_psnr(method, size)
    value = psnr(RECON_METHODS[method](acq, device, backend), acq.image)
    return value - reference, f"{value:.3f} dB vs CPU {reference:.3f} dB"


def recon_rows(args: argparse.Namespace, device: torch.device, backend: str) -> list[Row]:
    """CG-SENSE and MBDL PSNR on the device against the CPU for one backend."""
    target = Target("|x|<=", PSNR_DELTA_TARGET)
    return [
        run_check(
            f"{method} PSNR device - CPU (dB)",
            backend,
            target,
            lambda method=method: psnr_delta(method, args.recon_size, device, backend),
        )
        for method in RECON_METHODS
    ]


# --- d: training-step memory against the meta estimate ----------------------------------------

#: memory_table's key of the measured step peak per device.
MEASURED_KEY = {"cuda": "cuda_bytes", "cpu": "saved_bytes"}


@functools.cache
def step_memory(problem: StepProblem, patches: tuple[int, ...], device: str) -> dict:
    """:func:`blockrecon.step_memory.memory_table` measured on ``device`` (computed once)."""
    return memory_table(problem, patches, device=device, progress=False)


def memory_ratio(
    problem: StepProblem, patches: tuple[int, ...], device: str, patch: int | None
) -> tuple[float, str]:
    """Measured step peak over its meta estimate for ``patch`` (``None``: full backprop)."""
    table = step_memory(problem, patches, device)
    row = next(r for r in [*table["rows"], table["full"]] if r["patch"] == patch)
    if not row["measured"]:
        return math.nan, (
            f"not measured: estimate {row['estimate_bytes'] / MIB:.1f} MiB "
            "does not fit the free memory"
        )
    measured = row[MEASURED_KEY[device]]
    return measured / row["estimate_bytes"], (
        f"{device} {measured / MIB:.1f} MiB, estimate {row['estimate_bytes'] / MIB:.1f} MiB, "
        f"{row['seconds']:.2f} s"
    )


def memory_rows(args: argparse.Namespace, device: torch.device, backend: str) -> list[Row]:
    """Step peak over estimate per patch size and for full backpropagation."""
    problem = StepProblem((args.memory_size,) * 3, backend=backend, **args.step)
    patches = tuple(sorted(set(args.patches)))
    target = Target("<=", FIT_MARGIN)
    return [
        run_check(
            f"step memory / estimate, patch {patch or 'full'}",
            backend,
            target,
            lambda patch=patch: memory_ratio(problem, patches, device.type, patch),
        )
        for patch in [*patches, None]
    ]


# --- e: MBDL on the device against L1-wavelet CS on the CPU -----------------------------------


def speedup(size: int, device: torch.device, backend: str) -> tuple[float, str]:
    """L1-wavelet CS time on the CPU over MBDL time on ``device`` (warmed up), with both
    PSNRs in the note."""
    acq = demo_acquisition(size)
    dcf = pipe_menon_dcf(acq.coord, acq.image_shape, backend=REFERENCE_BACKEND, progress=False)
    cs, cs_seconds = timed(
        lambda: l1_wavelet(
            acq.kspace,
            acq.coord,
            acq.maps,
            lamda=L1_LAMDA,
            n_iter=CS_ITERATIONS,
            weights=dcf,
            backend=REFERENCE_BACKEND,
            progress=False,
        ),
        torch.device("cpu"),
    )
    patch = min(TIMING_PATCH, size)
    timed(lambda: mbdl_method(acq, device, backend, patch), device)  # warm-up
    mbdl, mbdl_seconds = timed(lambda: mbdl_method(acq, device, backend, patch), device)
    return cs_seconds / mbdl_seconds, (
        f"MBDL {mbdl_seconds:.2f} s ({device.type}, {patch}^3 cores) {psnr(mbdl, acq.image):.2f} "
        f"dB; L1-wavelet {CS_ITERATIONS} it. {cs_seconds:.2f} s (cpu) "
        f"{psnr(cs, acq.image):.2f} dB"
    )


def speed_rows(args: argparse.Namespace, device: torch.device, backend: str) -> list[Row]:
    """The MBDL-over-CS speed-up row."""
    return [
        run_check(
            f"speed-up MBDL ({device.type}) / CS (cpu), {args.timing_size}^3",
            backend,
            Target(">=", 1.0),
            lambda: speedup(args.timing_size, device, backend),
        )
    ]


# --- running, reporting -----------------------------------------------------------------------


def backends_row(device: torch.device, backends: list[str]) -> Row:
    """Whether any NUFFT backend runs on the device."""
    note = ", ".join(backends) or "none: pip install -e '.[gpu]' (CuPy, cuFINUFFT)"
    return Row(
        "nufft backends on device",
        device.type,
        float(len(backends)),
        ">= 1",
        bool(backends),
        0.0,
        note,
    )


def run_all(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Every check, in order: backends, NUFFT and Toeplitz per backend, reconstructions per
    backend, step memory and speed with the first (fastest) backend."""
    backends = args.backends or list(available_backends(device.type))
    rows = [backends_row(device, backends)]
    with torch.no_grad():
        for backend in backends:
            rows += nufft_rows(args, device, backend)
        for backend in backends:
            rows += recon_rows(args, device, backend)
    primary = backends[0] if backends else "auto"
    rows += memory_rows(args, device, primary)
    with torch.no_grad():
        rows += speed_rows(args, device, primary)
    return rows


def format_value(value: float | None) -> str:
    """A value for the table: 3 significant digits, ``-`` when missing."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


def format_table(rows: list[Row]) -> str:
    """Plain-text table of the rows; a failed row's note is its error when it raised."""
    width = max(len(row.check) for row in rows)
    header = (
        f"{'check':<{width}}  {'backend':<9}{'value':>10}  {'target':<12}{'pass':<6}"
        f"{'time s':>8}  note"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.check:<{width}}  {row.backend:<9}{format_value(row.value):>10}  "
            f"{row.target:<12}{'ok' if row.passed else 'FAIL':<6}{row.seconds:>8.2f}  "
            f"{row.error or row.note}"
        )
    return "\n".join(lines)


def device_name(device: torch.device) -> str:
    """The GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "gpu_check.json"
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        help="NUFFT backends to check (default: every one installed for CUDA)",
    )
    parser.add_argument("--dft-size", type=int, default=16, help="NUFFT checks' image size")
    parser.add_argument("--samples", type=int, default=4000, help="NUFFT checks' samples")
    parser.add_argument("--recon-size", type=int, default=48, help="CG-SENSE / MBDL size")
    parser.add_argument("--memory-size", type=int, default=96, help="training-step size")
    parser.add_argument("--patches", type=int, nargs="+", default=[16, 32, 48])
    parser.add_argument("--timing-size", type=int, default=64, help="MBDL vs CS timing size")
    # checks the script's logic on the CPU (CPU against CPU); not a readiness check
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help=argparse.SUPPRESS)
    parser.set_defaults(step={})  # StepProblem's network and coils: its defaults
    args = parser.parse_args(argv)
    if args.quick:
        args.dft_size, args.samples, args.recon_size = 8, 500, 16
        args.memory_size, args.patches, args.timing_size = 16, [8], 16
        args.step = {"coils": 2, "width": 4, "n_layers": 2}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device: torch {torch.__version__} (CUDA "
            f"{torch.version.cuda or 'not built in'}) sees none",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    start = time.perf_counter()
    rows = run_all(args, device)
    seconds = time.perf_counter() - start
    print(format_table(rows))
    passed = sum(row.passed for row in rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        args.json,
        {
            "device": device_name(device),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "passed": passed,
            "total": len(rows),
            "seconds": seconds,
            "rows": [asdict(row) for row in rows],
        },
    )
    print(
        f"gpu_check: {passed}/{len(rows)} checks passed on {device_name(device)} in "
        f"{seconds:.1f} s; wrote {args.json}"
    )
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
