"""Train the pretrained unrolled network shipped as ``blockrecon/models/pretrained_unrolled.pt``.

Reproducible from its seed on a CPU in minutes: random-ellipsoid phantoms (training seeds
``seed + i``, held-out seeds ``seed + 10000 + i``) acquired on the demo's golden-angle 3D radial
trajectory (:func:`~blockrecon.physics.trajectory.radial_spokes`, readout N) with birdcage
coils, simulated from a 2x finer grid with k-space noise. The network (configuration
:data:`CONFIG`) is trained block-wise: its regularizer runs on checkpointed patches, data
consistency on the full volume: 3 iterations of CG with the circulant preconditioner
(:mod:`blockrecon.physics.preconditioner`) per unroll, differentiated through those
iterations. Preconditioned, 3 iterations do at 96^3 what 12 plain ones did, so the network
needs no retuning of its iterations at larger sizes. ``--density-weights`` trains data
consistency on the density-weighted problem (``E^H W E``, Pipe-Menon ``W``): better
conditioned, but it amplifies the noise. Loss: relative L2; Adam with a step decay.

At the end the model is compared with gridding, CG-SENSE and L1-wavelet CS (as
:mod:`blockrecon.demo` configures them) on held-out ellipsoid volumes at the training setting
and on the demo's Shepp-Logan volume; the table (PSNR, SSIM, NRMSE, time) is printed and written
to JSON, and the held-out means go into the model file's metadata.

    python scripts/train_pretrained.py --n-test 4 --demo-size 0   # the shipped model (11 min)
    python scripts/train_pretrained.py --quick         # smoke run, writes to benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from blockrecon import demo
from blockrecon.atomic import atomic_write
from blockrecon.inference import DataContract
from blockrecon.losses import relative_l2
from blockrecon.models import build_unrolled, resolve_config, save_model
from blockrecon.models.pretrained import PRETRAINED_FILE
from blockrecon.physics import (
    Acquisition,
    Sense,
    pipe_menon_dcf,
    radial_3d,
    simulate_acquisition,
)
from blockrecon.physics.trajectory import radial_spokes

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_OFFSET = 10_000

#: Architecture of the shipped model.
CONFIG = {
    "regularizer": {"kind": "resnet3d", "width": 16, "n_layers": 5, "kernel_size": 3},
    "dc": {
        "kind": "cg",
        "lam": 0.05,
        "n_iter": 3,
        "tol": 0.0,
        "learnable": True,
        "preconditioner": "circulant",
        "backward": "unrolled",
    },
    "n_unrolls": 4,
    "share_weights": True,
    "init": "adjoint",
    "patch_size": 16,
    "patch_batch": 8,
    "padding": "reflect",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=32, help="training volume N (N^3)")
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=8.0)
    parser.add_argument("--snr", type=float, default=40.0, help="k-space SNR in dB")
    parser.add_argument("--n-train", type=int, default=48, help="training volumes")
    parser.add_argument("--n-test", type=int, default=8, help="held-out volumes")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--demo-size", type=int, default=48, help="size of the Shepp-Logan evaluation (0 skips it)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="JSON file of configuration entries replacing those of CONFIG (architecture trials)",
    )
    parser.add_argument(
        "--density-weights",
        action="store_true",
        help="train data consistency on E^H W E (Pipe-Menon W) instead of E^H E",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "blockrecon" / "models" / PRETRAINED_FILE
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "pretrained.json"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (writes the model under benchmarks/results)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_train, args.n_test, args.steps, args.demo_size = 16, 2, 1, 4, 0
        args.out = ROOT / "benchmarks" / "results" / "pretrained_quick.pt"
        args.json = ROOT / "benchmarks" / "results" / "pretrained_quick.json"
    return args


def acquisition(args: argparse.Namespace, seed: int) -> Acquisition:
    """A random-ellipsoid acquisition at the training setting."""
    coord = radial_3d(radial_spokes(args.size, args.acceleration), args.size)
    return simulate_acquisition(
        coord,
        (args.size,) * 3,
        n_coils=args.coils,
        phantom="ellipsoids",
        snr_db=args.snr,
        seed=seed,
    )


def learning_rate(args: argparse.Namespace, step: int) -> float:
    """``lr`` for the first 60% of the steps, then 0.3x, then 0.1x for the last 20%."""
    fraction = step / args.steps
    return args.lr * (1.0 if fraction < 0.6 else 0.3 if fraction < 0.8 else 0.1)


def train(args: argparse.Namespace, model: torch.nn.Module) -> list[float]:
    """Adam on relative L2 over the training volumes in a seeded random order; the losses."""
    volumes = [acquisition(args, args.seed + i) for i in range(args.n_train)]
    coord = volumes[0].coord  # same maps and trajectory for every volume
    weights = pipe_menon_dcf(coord, volumes[0].image_shape) if args.density_weights else None
    op = Sense(volumes[0].maps, coord, weights=weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args, step)
        acq = volumes[int(torch.randint(len(volumes), (1,), generator=order))]
        optimizer.zero_grad(set_to_none=True)
        loss = relative_l2(model(acq.kspace, op), acq.image)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 20 == 0 or step + 1 == args.steps:
            recent = sum(losses[-20:]) / len(losses[-20:])
            print(
                f"step {step + 1}/{args.steps}  loss {recent:.4f}  "
                f"{time.perf_counter() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return losses


def evaluate(model: torch.nn.Module, extra: dict, acq: Acquisition) -> list[dict]:
    """Demo methods and the network (taking its data as ``extra`` says) on one acquisition:
    rows of :func:`demo.quality_rows`."""
    model.eval()
    methods = {**demo.classical_methods(acq, progress=False), **demo.mbdl_method(acq, model, extra)}
    return demo.quality_rows(demo.run_demo(methods), acq.image)


def mean_rows(per_volume: list[list[dict]]) -> list[dict]:
    """Per method, the mean of each metric over volumes."""
    keys = ("psnr_db", "ssim", "nrmse", "seconds")
    rows = []
    for i, first in enumerate(per_volume[0]):
        values = [rows_[i] for rows_ in per_volume]
        rows.append(
            {
                "method": first["method"],
                "peak_mib": None,
                **{k: sum(v[k] for v in values) / len(values) for k in keys},
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = resolve_config(
        {**CONFIG, **(json.loads(args.config.read_text()) if args.config else {})}
    )
    model = build_unrolled(config)
    start = time.perf_counter()
    losses = train(args, model)
    train_seconds = time.perf_counter() - start

    data = DataContract(density_weights=args.density_weights).to_extra()
    held_out = mean_rows(
        [
            evaluate(model, data, acquisition(args, args.seed + HELD_OUT_OFFSET + i))
            for i in range(args.n_test)
        ]
    )
    print(
        f"\nHeld-out random ellipsoids ({args.n_test} volumes, {args.size}^3, {args.coils} "
        f"coils, {args.acceleration:g}x, {args.snr:g} dB), means:"
    )
    print(demo.format_table(held_out))
    results = {"held_out": held_out}
    if args.demo_size:
        phantom = demo.simulate_demo(args.demo_size, args.coils, args.acceleration, args.snr)
        results["shepp_logan"] = evaluate(model, data, phantom)
        print(f"\nShepp-Logan {args.demo_size}^3 (the demo's default acquisition):")
        print(demo.format_table(results["shepp_logan"]))

    extra = {
        **data,
        "seed": args.seed,
        "image_size": args.size,
        "n_coils": args.coils,
        "acceleration": args.acceleration,
        "snr_db": args.snr,
        "phantom": "ellipsoids",
        "trajectory": "golden-angle 3D radial, readout N (physics.trajectory.radial_spokes)",
        "n_train": args.n_train,
        "steps": args.steps,
        "lr": args.lr,
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "train_seconds": round(train_seconds, 1),
        "threads": args.threads,
        "metrics": {
            "held_out": held_out,
            **({"shepp_logan": results["shepp_logan"]} if "shepp_logan" in results else {}),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(args.out, model, config, extra)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "config": config,
        "training": {k: v for k, v in extra.items() if k != "metrics"},
        "losses": losses,
        **results,
    }
    atomic_write(args.json, lambda p: p.write_text(json.dumps(report, indent=2)))
    print(
        f"\nTrained in {train_seconds:.0f} s; wrote {args.out} "
        f"({args.out.stat().st_size / 1e6:.2f} MB) and {args.json}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
