"""blockrecon against its peers (mrpro, torchkbnufft, SigPy, BART) on one acquisition per size.

Per image size N (``--sizes``, default 32 64 128; ``--quick``: 16 24 with fewer repeats) one
simulated scan is shared by every library: 8 birdcage coils, a Shepp-Logan phantom, the
golden-means 3D radial trajectory with 8-fold angular undersampling and 2x readout
oversampling, 30 dB k-space noise (:func:`blockrecon.physics.simulate_radial`), complex64.
Every library gets the same coordinates, maps, k-space and test vectors, the same number of
threads (``--threads``, set before any library starts its thread pools), and its accurate
kernel class: FINUFFT at eps 1e-5 (blockrecon) and 1e-6 (mrpro, its default), Kaiser-Bessel
width 6 on a 2x grid (torchkbnufft's default), SigPy at oversampling 2 and width 6 (its own
default is 1.25 and 4, about 1e-2 accurate). Rows:

- ``blockrecon``: :class:`~blockrecon.physics.Sense` with its Toeplitz normal (the default);
  ``blockrecon pair``: the same with ``normal="pair"`` (forward then adjoint NUFFT);
- ``mrpro``: ``NonUniformFastFourierOp`` and ``SensitivityOp``, normal ``(F @ S).gram``;
- ``torchkbnufft``: ``KbNufft``, ``KbNufftAdjoint``, normal ``ToepNufft`` with
  ``calc_toeplitz_kernel``;
- ``sigpy``: ``linop.NUFFT(toeplitz=True)`` and ``linop.Multiply``, normal
  ``S^H F.N S`` (the Toeplitz PSF on the 2x grid);
- ``bart``: ``bart nufft`` and ``bart pics -l2`` as processes (wall time with file input and
  output; no setup column, no normal operator).

Columns: ``setup`` (building the operators: plans, Toeplitz kernel, first calls), ``forward`` /
``adjoint`` (NUFFT of the 8 coil images / k-spaces, no maps), ``normal`` (SENSE normal ``E^H E``
of one image), medians of ``--repeats`` calls with the libraries interleaved call by call, so
that load from other processes hits all alike. ``normal busy`` (with ``--busy-core``): the
same with one process spinning on a core, to see how a shared machine slows each library.
Accuracy: relative error of one coil's forward against the exact DFT
(``backend="dft"``) on 512 random samples, of its adjoint against the exact sum at 512 random
voxels, and of the normal against the exact ``E^H E`` (exact DFTs for N <= 24,
``--exact-normal-max``; above, a FINUFFT pair in complex128 at eps 1e-12 stands in, as the
exact DFTs would take minutes). ``CG``: 30 conjugate-gradient iterations from zero on
``E^H E x = E^H y`` without early stopping (``--cg-iters``), wall time with setup included,
and the PSNR of the result against the phantom (:func:`blockrecon.recon.psnr`). blockrecon
runs :func:`~blockrecon.recon.cg_sense`, mrpro its ``cg``, SigPy ``alg.ConjugateGradient``,
torchkbnufft (which has none) blockrecon's :func:`~blockrecon.physics.cg.conjugate_gradient`
on its own operators, BART ``pics -l2 -r 0``.

A missing peer is skipped with a note. Install them with ``pip install -e ".[peers]"`` after
torch (see benchmarks/README.md). Writes a JSON file and a log-log plot of time against size.

Usage: python benchmarks/bench_peers.py [--sizes N ...] [--quick] [--threads T] [--repeats R]
[--cg-iters K] [--busy-core] [--libraries NAME ...] [--json PATH] [--plot PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LIBRARIES = ("blockrecon", "blockrecon pair", "mrpro", "torchkbnufft", "sigpy", "bart")
#: Samples and voxels at which forward and adjoint are compared with the exact sums.
ACCURACY_POINTS = 512
#: Coils whose forward and adjoint are compared (of the 8).
ACCURACY_COILS = 1
COILS = 8
SNR_DB = 30.0
BLOCKRECON_EPS = 1e-5
#: Accuracy of the double-precision FINUFFT pair that stands in for the exact normal above
#: ``--exact-normal-max`` (the exact DFT costs samples x voxels per coil).
REFERENCE_EPS = 1e-12
#: Memory SigPy's Toeplitz NUFFT setup took beyond the problem at 128^3 before it was killed
#: (it passed 23.8 GB resident with 4.7 GB of problem and references): a lower bound, scaled
#: with N^3 to other sizes.
SIGPY_TOEPLITZ_BYTES_128 = 19e9
#: Table columns: key, heading, format.
COLUMNS = (
    ("size", "N", "{:>4}"),
    ("library", "library", "{:<16}"),
    ("setup_s", "setup s", "{:>8.3f}"),
    ("forward_s", "fwd s", "{:>7.3f}"),
    ("adjoint_s", "adj s", "{:>7.3f}"),
    ("normal_s", "normal s", "{:>8.3f}"),
    ("normal_busy_s", "busy s", "{:>7.3f}"),
    ("forward_err", "fwd err", "{:>8.1e}"),
    ("adjoint_err", "adj err", "{:>8.1e}"),
    ("normal_err", "N err", "{:>8.1e}"),
    ("cg_s", "CG s", "{:>7.2f}"),
    ("cg_psnr", "CG dB", "{:>6.2f}"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="image sizes N")
    parser.add_argument("--quick", action="store_true", help="16^3 and 24^3, 3 repeats")
    parser.add_argument("--threads", type=int, default=None, help="threads for every library")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per operation")
    parser.add_argument("--cg-iters", type=int, default=30, help="CG iterations (0 skips CG)")
    parser.add_argument(
        "--busy-core", action="store_true", help="also time the normal with one core kept busy"
    )
    parser.add_argument(
        "--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES), help="rows to run"
    )
    parser.add_argument(
        "--exact-normal-max", type=int, default=24, help="largest N whose N err uses exact DFTs"
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_peers.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "bench_peers.png")
    args = parser.parse_args(argv)
    for name in ("threads", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.cg_iters < 0:
        parser.error(f"--cg-iters must be non-negative, got {args.cg_iters}")
    sizes = args.sizes or ([16, 24] if args.quick else [32, 64, 128])
    if min(sizes) < 8:
        parser.error(f"--sizes must be at least 8, got {sizes}")
    args.sizes = sizes
    args.repeats = args.repeats or (3 if args.quick else 5)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if not path.parent.is_dir() and path.parent != RESULTS:
            parser.error(f"{option} folder {path.parent} does not exist")
    return args


def set_threads_before_imports(threads: int | None) -> int:
    """Pin every library's thread count through the environment (read when their runtimes
    start, so this runs before torch, FINUFFT and numba are imported). Returns the count."""
    count = threads or len(os.sched_getaffinity(0))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(count)
    return count


# Everything below imports torch; main() sets the thread environment first.


@dataclass
class Problem:
    """One acquisition shared by every library (complex64, CPU)."""

    size: int
    coord: object  # (spokes, readout, 3) float32, grid units
    maps: object  # (coils, N, N, N)
    image: object  # phantom (N, N, N)
    kspace: object  # (coils, spokes, readout)
    test_image: object  # random (N, N, N), input of the normal
    coil_images: object  # random (coils, N, N, N), input of forward
    coil_kspace: object  # random (coils, spokes, readout), input of adjoint
    sample_index: object  # samples for the forward's accuracy
    voxel_index: object  # flat voxels for the adjoint's accuracy


@dataclass
class Case:
    """One library's operations on a problem; each returns a torch tensor."""

    setup_s: float | None
    forward: Callable | None = None  # -> (coils, samples)
    adjoint: Callable | None = None  # -> (coils, N, N, N)
    normal: Callable | None = None  # -> (N, N, N)
    cg: Callable | None = None  # iterations -> image (setup included)
    notes: list[str] = field(default_factory=list)


def make_problem(size: int):
    import torch

    from blockrecon.physics import simulate_radial

    acq = simulate_radial((size,) * 3, n_coils=COILS, snr_db=SNR_DB, backend="finufft")
    gen = torch.Generator().manual_seed(size)
    samples = acq.coord.shape[0] * acq.coord.shape[1]
    return Problem(
        size=size,
        coord=acq.coord.float().contiguous(),
        maps=acq.maps.to(torch.complex64).contiguous(),
        image=acq.image,
        kspace=acq.kspace.to(torch.complex64).contiguous(),
        test_image=torch.randn((size,) * 3, dtype=torch.complex64, generator=gen),
        coil_images=torch.randn((COILS, *(size,) * 3), dtype=torch.complex64, generator=gen),
        coil_kspace=torch.randn(acq.kspace.shape, dtype=torch.complex64, generator=gen),
        sample_index=torch.randperm(samples, generator=gen)[:ACCURACY_POINTS],
        voxel_index=torch.randperm(size**3, generator=gen)[:ACCURACY_POINTS],
    )


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# ---------------------------------------------------------------- libraries


def blockrecon_case(p: Problem, normal: str):
    import torch

    from blockrecon.physics import Sense
    from blockrecon.physics.nufft import NUFFT
    from blockrecon.recon import cg_sense

    def build():
        nufft = NUFFT(p.coord, (p.size,) * 3, backend="finufft", eps=BLOCKRECON_EPS)
        sense = Sense(p.maps, p.coord, backend="finufft", normal=normal, eps=BLOCKRECON_EPS)
        nufft.apply_forward(p.coil_images), nufft.apply_adjoint(p.coil_kspace)
        sense.normal(p.test_image)
        return nufft, sense

    (nufft, sense), setup = timed(build)

    def cg(iters: int):
        return cg_sense(p.kspace, p.coord, p.maps, n_iter=iters, tol=0.0, progress=False)

    return Case(
        setup,
        forward=lambda: nufft.apply_forward(p.coil_images),
        adjoint=lambda: nufft.apply_adjoint(p.coil_kspace),
        normal=lambda: sense.normal(p.test_image),
        cg=cg if normal == "toeplitz" else None,
        notes=[f"FINUFFT eps {BLOCKRECON_EPS}, torch {torch.__version__}"],
    )


def import_mrpro():
    """mrpro, importable without a working torchvision: it imports torchvision only for its
    BrainWeb phantom. pip's torchvision wheels are built for CUDA torch; with CPU torch that
    import fails, so an empty placeholder stands in (this benchmark never uses it)."""
    try:
        import mrpro
    except (ImportError, RuntimeError) as error:
        if "torchvision" not in repr(error) and "nms" not in repr(error):
            raise
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
            sys.modules.pop(name, None)
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules[
            "torchvision.transforms.functional"
        ]
        for name in [m for m in sys.modules if m.startswith("mrpro")]:
            del sys.modules[name]
        import mrpro
    return mrpro


def mrpro_case(p: Problem):
    mrpro = import_mrpro()
    from mrpro.algorithms.optimizers import cg as mrpro_cg
    from mrpro.data import KTrajectory
    from mrpro.operators import NonUniformFastFourierOp, SensitivityOp

    shape = (p.size,) * 3
    # mrpro: (other, coils, k2, k1, k0) with kz, ky, kx = coordinate 0, 1, 2 (image axes z, y, x)
    coord = p.coord[None, None, None]  # (1, 1, 1, spokes, readout, 3)
    image = p.test_image[None, None]
    coil_images = p.coil_images[None]
    coil_kspace = p.coil_kspace[None, :, None]
    rhs_kspace = p.kspace[None, :, None]

    def build():
        traj = KTrajectory(coord[..., 0], coord[..., 1], coord[..., 2])
        fourier = NonUniformFastFourierOp(("z", "y", "x"), shape, shape, traj)
        sens = SensitivityOp(p.maps[None])
        gram = (fourier @ sens).gram
        fourier(coil_images), fourier.adjoint(coil_kspace), gram(image)
        return fourier, sens, gram

    (fourier, sens, gram), setup = timed(build)

    def cg(iters: int):
        f, s, g = build()
        rhs = (f @ s).adjoint(rhs_kspace)[0]
        (x,) = mrpro_cg(g, rhs, max_iterations=iters, tolerance=0.0)
        return x[0, 0]

    return Case(
        setup,
        forward=lambda: fourier(coil_images)[0][0, :, 0].reshape(COILS, -1),
        adjoint=lambda: fourier.adjoint(coil_kspace)[0][0],
        normal=lambda: gram(image)[0][0, 0],
        cg=cg,
        notes=[f"mrpro {mrpro.__version__} (FINUFFT through pytorch-finufft, eps 1e-6)"],
    )


def torchkbnufft_case(p: Problem):
    import torchkbnufft as tkbn

    from blockrecon.physics.cg import conjugate_gradient

    shape = (p.size,) * 3
    scale = 1 / math.sqrt(math.prod(shape))  # norm=None is the plain sum; blockrecon is unitary
    omega = (p.coord.reshape(-1, 3).T * (2 * math.pi / p.size)).contiguous()
    smaps = p.maps[None]
    image = p.test_image[None, None]
    coil_images = p.coil_images[None]
    coil_kspace = p.coil_kspace.reshape(1, COILS, -1)

    def build():
        forward = tkbn.KbNufft(im_size=shape)
        adjoint = tkbn.KbNufftAdjoint(im_size=shape)
        toep = tkbn.ToepNufft()
        kernel = tkbn.calc_toeplitz_kernel(omega, shape) * scale**2
        forward(coil_images, omega), adjoint(coil_kspace, omega), toep(image, kernel, smaps=smaps)
        return forward, adjoint, toep, kernel

    (forward, adjoint, toep, kernel), setup = timed(build)

    def cg(iters: int):
        _, adj, tp, kern = build()
        rhs = adj(p.kspace.reshape(1, COILS, -1), omega, smaps=smaps)[0, 0] * scale
        normal = lambda x: tp(x[None, None], kern, smaps=smaps)[0, 0]  # noqa: E731
        return conjugate_gradient(normal, rhs, iters, 0.0, progress=False)

    return Case(
        setup,
        forward=lambda: forward(coil_images, omega)[0] * scale,
        adjoint=lambda: adjoint(coil_kspace, omega)[0] * scale,
        normal=lambda: toep(image, kernel, smaps=smaps)[0, 0],
        cg=cg,
        notes=[
            f"torchkbnufft {tkbn.__version__} (Kaiser-Bessel width 6, 2x grid); CG: blockrecon's"
        ],
    )


class TooLarge(Exception):
    """A library's case would not fit in this machine's memory."""


def sigpy_case(p: Problem):
    from blockrecon.memory import available_memory_bytes

    need, available = SIGPY_TOEPLITZ_BYTES_128 * (p.size / 128) ** 3, available_memory_bytes()
    if need > available:
        raise TooLarge(
            f"SigPy's Toeplitz setup needs more than {need / 1e9:.0f} GB here, "
            f"{available / 1e9:.0f} GB available"
        )
    import numpy as np
    import sigpy as sp
    import torch

    shape = (p.size,) * 3
    coord = p.coord.numpy()
    maps = p.maps.numpy()
    coil_images = p.coil_images.numpy()
    coil_kspace = p.coil_kspace.numpy()
    image = p.test_image.numpy()

    def build():
        nufft = sp.linop.NUFFT((COILS, *shape), coord, oversamp=2.0, width=6, toeplitz=True)
        mult = sp.linop.Multiply(shape, maps)
        normal = mult.H * nufft.N * mult
        nufft(coil_images), nufft.H(coil_kspace), normal(image)
        return nufft, mult, normal

    (nufft, mult, normal), setup = timed(build)

    def cg(iters: int):
        f, s, n = build()
        rhs = s.H(f.H(p.kspace.numpy()))
        x = np.zeros(shape, dtype=np.complex64)
        alg = sp.alg.ConjugateGradient(n, rhs, x, max_iter=iters)
        while not alg.done():
            alg.update()
        return torch.from_numpy(x)

    return Case(
        setup,
        forward=lambda: torch.from_numpy(nufft(coil_images)).reshape(COILS, -1),
        adjoint=lambda: torch.from_numpy(nufft.H(coil_kspace)),
        normal=lambda: torch.from_numpy(normal(image)),
        cg=cg,
        notes=[f"sigpy {sp.__version__} (oversampling 2, width 6, Toeplitz PSF)"],
    )


def bart_case(p: Problem, folder: Path):
    """BART by process calls on .cfl files (wall time, file input/output included)."""
    import numpy as np
    import torch
    from bench_nufft import _write_cfl

    if shutil.which("bart") is None:
        raise ImportError("the bart program is not on PATH")
    dims = ":".join(str(p.size) for _ in range(3))
    _write_cfl(folder / "traj", p.coord.permute(2, 1, 0).numpy())  # (3, readout, spokes)
    _write_cfl(folder / "img", p.coil_images.permute(1, 2, 3, 0).numpy())  # (x, y, z, coils)
    _write_cfl(folder / "ksp", p.coil_kspace.permute(2, 1, 0).numpy()[None])
    _write_cfl(folder / "data", p.kspace.permute(2, 1, 0).numpy()[None])
    _write_cfl(folder / "sens", p.maps.permute(1, 2, 3, 0).numpy())

    def run(*args: str) -> None:
        subprocess.run(["bart", *args], check=True, capture_output=True, cwd=folder)

    def read(stem: str) -> torch.Tensor:
        shape = [int(n) for n in (folder / f"{stem}.hdr").read_text().split("\n")[1].split()]
        data = np.fromfile(folder / f"{stem}.cfl", dtype=np.complex64)
        return torch.from_numpy(data.reshape(shape[::-1]).copy()).permute(
            *reversed(range(len(shape)))
        )

    def forward():
        run("nufft", "traj", "img", "out_k")
        kspace = read("out_k").reshape(*p.coord.shape[1::-1], COILS)  # (readout, spokes, coils)
        return kspace.permute(2, 1, 0).reshape(COILS, -1)

    def adjoint():
        run("nufft", "-a", "-d", dims, "traj", "ksp", "out_i")
        return read("out_i").reshape(*(p.size,) * 3, COILS).permute(3, 0, 1, 2)

    def cg(iters: int):
        run("pics", "-l2", "-r", "0", "-i", str(iters), "-t", "traj", "data", "sens", "out_x")
        return read("out_x").reshape((p.size,) * 3)

    version = subprocess.run(["bart", "version"], capture_output=True, text=True).stdout.strip()
    return Case(
        None,
        forward=forward,
        adjoint=adjoint,
        cg=cg,
        notes=[f"bart {version} (process wall time, .cfl input/output included)"],
    )


# ---------------------------------------------------------------- accuracy


def exact_references(p: Problem, exact_normal: bool) -> dict:
    """Exact forward at the chosen samples, exact adjoint at the chosen voxels (first
    ``ACCURACY_COILS`` coils), and the exact normal when ``exact_normal``; complex128."""
    import torch

    from blockrecon.physics import Sense
    from blockrecon.physics.nufft import NUFFT

    shape = (p.size,) * 3
    flat = p.coord.reshape(-1, 3).double()
    images = p.coil_images[:ACCURACY_COILS].to(torch.complex128)
    sub = NUFFT(flat[p.sample_index], shape, backend="dft")
    refs = {"forward": sub.apply_forward(images)}
    # adjoint at chosen voxels: x_r = 1/sqrt(P) sum_m y_m exp(+i 2 pi k_m . r / N)
    grid = torch.stack(torch.unravel_index(p.voxel_index, shape), dim=-1).double() - torch.tensor(
        [n // 2 for n in shape], dtype=torch.float64
    )
    kspace = p.coil_kspace[:ACCURACY_COILS].reshape(ACCURACY_COILS, -1).to(torch.complex128)
    adjoint = torch.zeros((ACCURACY_COILS, grid.shape[0]), dtype=torch.complex128)
    for start in range(0, flat.shape[0], 8192):
        phase = (flat[start : start + 8192] / p.size) @ grid.T * (2 * math.pi)
        adjoint += kspace[:, start : start + 8192] @ torch.polar(torch.ones_like(phase), phase)
    refs["adjoint"] = adjoint / math.sqrt(math.prod(shape))
    maps, coord = p.maps.to(torch.complex128), flat.reshape(p.coord.shape)
    if exact_normal:
        reference = Sense(maps, coord, backend="dft", normal="pair")
    else:  # a FINUFFT pair in double precision at eps 1e-12: exact to ~1e-11, but affordable
        reference = Sense(maps, coord, backend="finufft", normal="pair", eps=REFERENCE_EPS)
    refs["normal"] = reference.normal(p.test_image.to(torch.complex128))
    return refs


def relative_error(actual, expected) -> float:
    import torch

    actual, expected = actual.to(torch.complex128), expected.to(torch.complex128)
    return float((actual - expected).norm() / expected.norm())


def accuracy(p: Problem, case: Case, refs: dict) -> dict:
    errors = {}
    if case.forward is not None:
        out = case.forward()[:ACCURACY_COILS].reshape(ACCURACY_COILS, -1)
        errors["forward_err"] = relative_error(out[:, p.sample_index], refs["forward"])
    if case.adjoint is not None:
        out = case.adjoint()[:ACCURACY_COILS].reshape(ACCURACY_COILS, -1)
        errors["adjoint_err"] = relative_error(out[:, p.voxel_index], refs["adjoint"])
    if case.normal is not None and "normal" in refs:
        errors["normal_err"] = relative_error(case.normal(), refs["normal"])
    return errors


# ---------------------------------------------------------------- timing


def round_robin(cases: dict[str, Case], ops: tuple[str, ...], repeats: int) -> dict:
    """Median seconds of each (library, operation), one call of each per round."""
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for name, case in cases.items():
            for op in ops:
                fn = getattr(case, op)
                if fn is not None:
                    times.setdefault((name, op), []).append(timed(fn)[1])
    return {key: statistics.median(values) for key, values in times.items()}


class BusyCore:
    """A child process spinning on one core while the context is open."""

    def __enter__(self) -> BusyCore:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


def make_case(name: str, p: Problem, folder: Path) -> Case:
    if name == "blockrecon":
        return blockrecon_case(p, "toeplitz")
    if name == "blockrecon pair":
        return blockrecon_case(p, "pair")
    if name == "mrpro":
        return mrpro_case(p)
    if name == "torchkbnufft":
        return torchkbnufft_case(p)
    if name == "sigpy":
        return sigpy_case(p)
    return bart_case(p, folder)


def bench_size(size: int, args: argparse.Namespace, notes: dict[str, str]) -> list[dict]:
    import torch

    from blockrecon.recon import psnr

    p = make_problem(size)
    rows: dict[str, dict] = {}
    cases: dict[str, Case] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for name in args.libraries:
            try:
                case = make_case(name, p, Path(tmp))
            except ImportError as error:
                notes.setdefault(name, f"skipped: {error}")
                continue
            except TooLarge as error:
                notes[f"{name} at {size}^3"] = f"skipped: {error}"
                continue
            cases[name] = case
            notes.setdefault(name, "; ".join(case.notes))
            rows[name] = {"size": size, "library": name, "setup_s": case.setup_s}
        ops = ("forward", "adjoint", "normal")
        medians = round_robin(cases, ops, args.repeats)
        if args.busy_core:
            with BusyCore():
                busy = round_robin(cases, ("normal",), args.repeats)
        refs = exact_references(p, size <= args.exact_normal_max)
        for name, case in cases.items():
            row = rows[name]
            row["samples"] = p.coord.shape[0] * p.coord.shape[1]
            row["normal_reference"] = "dft" if size <= args.exact_normal_max else "finufft1e-12"
            for op in ops:
                row[f"{op}_s"] = medians.get((name, op))
            if args.busy_core:
                row["normal_busy_s"] = busy.get((name, "normal"))
            row.update(accuracy(p, case, refs))
            if case.cg is not None and args.cg_iters:
                image, row["cg_s"] = timed(lambda case=case: case.cg(args.cg_iters))
                row["cg_psnr"] = psnr(image, p.image)
    return list(rows.values())


# ---------------------------------------------------------------- output


def table(rows: list[dict]) -> str:
    widths = [len(fmt.format(0 if "f" in fmt or "e" in fmt else "")) for _, _, fmt in COLUMNS]
    lines = [" | ".join(h.rjust(w) for (_, h, _), w in zip(COLUMNS, widths, strict=True))]
    for row in rows:
        cells = []
        for (key, _, fmt), width in zip(COLUMNS, widths, strict=True):
            value = row.get(key)
            cells.append(" " * width if value is None else fmt.format(value))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("normal_s", "SENSE normal (s per call)"), ("cg_s", "CG-SENSE (s, setup incl.)")]
    if any(row.get("normal_busy_s") is not None for row in rows):
        panels.insert(1, ("normal_busy_s", "SENSE normal, one core busy (s)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for library in dict.fromkeys(row["library"] for row in rows):
            points = [
                (row["size"], row[key])
                for row in rows
                if row["library"] == library and row.get(key) is not None
            ]
            if points:
                color = f"C{LIBRARIES.index(library)}"  # the same colour in every panel
                ax.loglog(*zip(*points, strict=True), marker="o", color=color, label=library)
        sizes = sorted({row["size"] for row in rows})
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        if ax.lines:
            ax.legend(fontsize=7)
        ax.set_xlabel("image size N (N^3 voxels)")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = set_threads_before_imports(args.threads)
    import torch

    from blockrecon.cli.output import write_json
    from blockrecon.progress import progress_bar

    torch.set_num_threads(threads)
    sys.path.insert(0, str(Path(__file__).parent))  # bench_nufft's .cfl writer for BART
    args.json.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    notes: dict[str, str] = {}
    rows: list[dict] = []
    for size in progress_bar(args.sizes, desc="sizes"):
        size_rows = bench_size(size, args, notes)
        rows.extend(size_rows)
        print(table(size_rows), flush=True)  # as each size ends; the whole table comes last
        write_json(args.json, {"partial": True, "rows": rows})
    load_after = os.getloadavg()
    header = (
        f"{threads} threads, {os.cpu_count()} cores, {COILS} coils, complex64, "
        f"load average {load_before[0]:.2f} before / {load_after[0]:.2f} after"
        f"{', busy core: one spinning process' if args.busy_core else ''}"
    )
    print(header)
    print(table(rows))
    for name, note in notes.items():
        print(f"  {name}: {note}")
    write_json(
        args.json,
        {
            "threads": threads,
            "cores": os.cpu_count(),
            "coils": COILS,
            "repeats": args.repeats,
            "cg_iters": args.cg_iters,
            "busy_core": args.busy_core,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "notes": notes,
            "rows": rows,
        },
    )
    plot(rows, args.plot, header)
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
