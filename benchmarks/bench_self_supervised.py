"""Can a block-wise network trained without reference images match one trained with them?

Simulated pulmonary angiography volumes (``phantom="angio"``, birdcage coils, golden-means 3D
radial, k-space noise at ``--snr`` dB, simulated from a 2x finer grid) are acquired fully
sampled (``pi N^2 / 2`` spokes) and undersampled ``--acceleration``-fold by keeping the first
spokes in acquisition order (:func:`blockrecon.physics.undersample_spokes`). Three networks of
the same architecture are trained for the same number of optimizer steps on the same
undersampled training scans:

* ``supervised (truth)``: relative L2 against the true images;
* ``supervised (proxy)``: relative L2 against CG-SENSE of the fully sampled scans (the source's
  recipe for real data: well-sampled scans undersampled retrospectively);
* ``self-supervised``: multi-mask SSDU (:class:`blockrecon.train.SelfSupervised`, ``--splits``
  seeded k-space splits per scan) from the undersampled scans alone, no image of any kind.

They are compared on held-out scans with CG-SENSE and L1-wavelet CS of the same undersampled
data, CS's lambda tuned on a separate scan (lowest object NRMSE, as in ``bench_recon.py``).
Every method gets the true coil maps. PSNR and SSIM over the volume, NRMSE inside the object.

Usage: python benchmarks/bench_self_supervised.py [--size 64] [--steps 160] [--quick]
           [--json PATH] [--figure PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_recon import object_nrmse, tune

from blockrecon.cli.output import write_json
from blockrecon.models import load_model
from blockrecon.physics import Acquisition, radial_3d, simulate_acquisition, undersample_spokes
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.recon import cg_sense, l1_wavelet, psnr, ssim
from blockrecon.train import SelfSupervised, Supervised, TrainingPair, fit, normalize_pair

TEST_SEED, TUNING_SEED = 30_000, 30_100
CS_ITERATIONS = 30
CG_ITERATIONS = 20


def simulate_pair(
    size: int, coils: int, acceleration: float, snr_db: float, seed: int
) -> tuple[Acquisition, Acquisition]:
    """A fully sampled angiography scan and its ``acceleration``-fold golden-prefix subset."""
    full = simulate_acquisition(
        radial_3d(radial_spokes(size, 1.0), size),
        (size,) * 3,
        n_coils=coils,
        phantom="angio",
        snr_db=snr_db,
        seed=seed,
    )
    return full, undersample_spokes(full, acceleration)


def cg_image(acq: Acquisition) -> torch.Tensor:
    return cg_sense(acq.kspace, acq.coord, acq.maps, n_iter=CG_ITERATIONS, progress=False)


def training_sets(args) -> dict[str, list[TrainingPair]]:
    """Normalized undersampled training pairs with each kind of target (``None`` for SSDU)."""
    sets: dict[str, list[TrainingPair]] = {"truth": [], "proxy": [], "none": []}
    for i in range(args.train):
        started = time.perf_counter()
        full, under = simulate_pair(args.size, args.coils, args.acceleration, args.snr, i)
        targets = {"truth": under.image, "proxy": cg_image(full), "none": None}
        for kind, target in targets.items():
            sets[kind].append(normalize_pair(under.kspace, under.maps, under.coord, target))
        print(
            f"  training scan {i + 1}/{args.train}: {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return sets


def config(args) -> dict:
    return {
        "regularizer": {"kind": "resnet3d", "width": args.width, "n_layers": args.layers},
        "dc": {"kind": "cg", "n_iter": args.cg_dc_iterations},
        "n_unrolls": args.unrolls,
        "patch_size": args.patch,
        "init": "adjoint",
    }


def train(args, pairs: list[TrainingPair], objective, folder: Path) -> tuple[torch.nn.Module, dict]:
    """A network trained for ``args.steps`` optimizer steps (whole epochs over the objective's
    view of ``pairs``: ``splits`` items per pair for the self-supervised one)."""
    per_epoch = len(pairs) * getattr(objective, "splits", 1)
    epochs = max(1, round(args.steps / per_epoch))
    started = time.perf_counter()
    result = fit(
        config(args),
        pairs,
        folder,
        epochs=epochs,
        lr=args.lr,
        seed=args.seed,
        progress=False,
        objective=objective,
    )
    model = load_model(folder / "model.pt").model.eval()
    history = {
        "epochs": epochs,
        "steps": epochs * per_epoch,
        "seconds": time.perf_counter() - started,
        "train_loss": [h["train_loss"] for h in result.history],
    }
    return model, history


def scores(image: torch.Tensor, acq: Acquisition) -> dict[str, float]:
    return {
        "psnr_db": psnr(image, acq.image),
        "ssim": ssim(image, acq.image),
        "nrmse": object_nrmse(image, acq),
    }


def network_image(model: torch.nn.Module, acq: Acquisition) -> torch.Tensor:
    pair = normalize_pair(acq.kspace, acq.maps, acq.coord)
    with torch.no_grad():
        return model(pair.kspace, pair.op) / pair.intensity_scale


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    print("simulating training scans", file=sys.stderr)
    sets = training_sets(args)
    models, training = {}, {}
    objectives = {
        "supervised (truth)": ("truth", Supervised()),
        "supervised (proxy)": ("proxy", Supervised()),
        "self-supervised": ("none", SelfSupervised(args.loss_fraction, args.splits)),
    }
    with tempfile.TemporaryDirectory() as folder:
        for name, (kind, objective) in objectives.items():
            print(f"training {name}", file=sys.stderr)
            run_dir = Path(folder) / kind
            models[name], training[name] = train(args, sets[kind], objective, run_dir)
    _, tuning = simulate_pair(args.size, args.coils, args.acceleration, args.snr, TUNING_SEED)
    print("tuning the CS lambda", file=sys.stderr)
    lamda, sweep = tune(
        args.lambdas,
        lambda value: l1_wavelet(
            tuning.kspace,
            tuning.coord,
            tuning.maps,
            value,
            n_iter=CS_ITERATIONS,
            progress=False,
        ),
        tuning,
    )
    methods = {
        "CG-SENSE": cg_image,
        f"L1-wavelet ({CS_ITERATIONS} it.)": lambda acq: l1_wavelet(
            acq.kspace, acq.coord, acq.maps, lamda, n_iter=CS_ITERATIONS, progress=False
        ),
        **{name: (lambda acq, m=model: network_image(m, acq)) for name, model in models.items()},
    }
    per_scan: dict[str, list] = {name: [] for name in methods}
    examples = {}
    for i in range(args.test):
        _, acq = simulate_pair(args.size, args.coils, args.acceleration, args.snr, TEST_SEED + i)
        for name, method in methods.items():
            image = method(acq)
            per_scan[name].append(scores(image, acq))
            if i == 0:
                examples[name] = image.abs()
        examples["truth"] = acq.image.abs()
    return {
        "settings": vars(args) | {"figure": str(args.figure), "json": str(args.json)},
        "cs_lambda": lamda,
        "cs_sweep": sweep,
        "training": training,
        "methods": {name: mean_scores(rows) for name, rows in per_scan.items()},
        "per_scan": per_scan,
        "_examples": examples,
    }


def table(result: dict) -> str:
    lines = [f"{'method':<24} {'PSNR dB':>8} {'SSIM':>7} {'NRMSE':>7}", "-" * 49]
    for name, s in result["methods"].items():
        lines.append(f"{name:<24} {s['psnr_db']:8.2f} {s['ssim']:7.3f} {s['nrmse']:7.4f}")
    return "\n".join(lines)


def figure(result: dict, path: Path) -> None:
    """Central slices of the first test scan per method, and training losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = result["_examples"]
    names = ["truth", *result["methods"]]
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.6))
    for ax, name in zip(axes, names, strict=True):
        volume = examples[name]
        mip = volume.amax(dim=0).numpy()
        ax.imshow(mip / max(float(volume.max()), 1e-12), cmap="gray", vmin=0, vmax=1)
        score = result["methods"].get(name)
        label = name if score is None else f"{name}\n{score['psnr_db']:.2f} dB"
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    fig.suptitle("maximum-intensity projections, held-out scan", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=8.0)
    parser.add_argument("--snr", type=float, default=35.0)
    parser.add_argument("--train", type=int, default=8, help="training scans")
    parser.add_argument("--test", type=int, default=3, help="held-out scans")
    parser.add_argument("--steps", type=int, default=160, help="optimizer steps per network")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--unrolls", type=int, default=3)
    parser.add_argument("--cg-dc-iterations", type=int, default=6)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--loss-fraction", type=float, default=0.4)
    parser.add_argument(
        "--splits", type=int, default=4, help="k-space splits per scan (multi-mask SSDU)"
    )
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="16^3, 2 training scans, 8 steps")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/self_supervised.json")
    )
    parser.add_argument(
        "--figure", type=Path, default=Path("benchmarks/results/self_supervised.png")
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.train, args.test, args.steps, args.patch = 16, 2, 1, 8, 8
        args.width, args.layers, args.unrolls, args.splits = 4, 2, 2, 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    result = run(args)
    print(table(result))
    figure(result, args.figure)
    write_json(args.json, {k: v for k, v in result.items() if not k.startswith("_")})
    print(f"wrote {args.json} and {args.figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
