"""``blockrecon seg``: train, predict, prune and evaluate cardiac segmentation U-Nets."""

from __future__ import annotations

import argparse
from pathlib import Path

from blockrecon.cli.options import show_progress
from blockrecon.cli.output import write_json


def _data_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="folder of <name>.nii.gz + <name>_gt.nii.gz pairs")
    src.add_argument(
        "--synthetic",
        type=int,
        default=4,
        metavar="SUBJECTS",
        help="synthetic cine hearts to generate",
    )
    p.add_argument("--frames", type=int, default=10, help="synthetic frames per heart")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="image size (synthetic, default 128; NIfTI: crop/pad to it)",
    )
    p.add_argument(
        "--scale",
        default="mixed",
        choices=("human", "small_animal", "mixed"),
        help="synthetic hearts' anatomy (mixed: alternating by subject)",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed")


def _load_data(args: argparse.Namespace):
    from blockrecon.io.acdc import load_acdc_folder
    from blockrecon.seg.data import synthetic_cine

    if args.data is not None:
        return load_acdc_folder(args.data, size=args.size)
    return synthetic_cine(
        args.synthetic, args.frames, args.size or 128, scale=args.scale, seed=args.seed
    )


def _scores(model, images, labels, args) -> dict:
    from blockrecon.seg.metrics import evaluate_labels
    from blockrecon.seg.train import predict

    pred = predict(model, images, progress=show_progress(args))
    return evaluate_labels(pred, labels, model.out_ch)


def _print_scores(name: str, scores: dict) -> None:
    dice = " ".join(
        f"{c}={d:.4f}" for c, d in zip(("RV", "MYO", "LV"), scores["dice"], strict=False)
    )
    hd = " ".join(f"{c}={d:.2f}" for c, d in zip(("RV", "MYO", "LV"), scores["hd95"], strict=False))
    print(f"{name}: Dice {dice} | HD95 (px) {hd}")


def _train(args: argparse.Namespace) -> int:
    from blockrecon.seg.checkpoint import save_model
    from blockrecon.seg.train import build_model, train_segmentation

    images, labels = _load_data(args)
    model = build_model(args.base_width, args.depth, None if args.norm == "none" else args.norm)
    history = train_segmentation(
        model,
        images,
        labels,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        filter_sparsity=args.sparsity,
        progress=show_progress(args),
    )
    save_model(args.out, model, extra={"loss_history": history})
    print(
        f"trained {sum(p.numel() for p in model.parameters())} parameters on "
        f"{len(images)} images, final loss {history[-1]:.4f}; saved {args.out}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from blockrecon.seg.checkpoint import load_model

    model = load_model(args.model).model
    images, labels = _load_data(args)
    scores = _scores(model, images, labels, args)
    _print_scores(f"{len(images)} images", scores)
    if args.json:
        write_json(args.json, scores)
    return 0


def _predict(args: argparse.Namespace) -> int:
    import torch

    from blockrecon.io.acdc import save_label_volume
    from blockrecon.io.nifti import read_nifti_volume
    from blockrecon.seg.checkpoint import load_model
    from blockrecon.seg.train import predict

    model = load_model(args.model).model
    volume, affine = read_nifti_volume(args.input)
    images = torch.from_numpy(volume.transpose(2, 0, 1)[:, None].astype("float32"))
    labels = predict(model, images, progress=show_progress(args))
    save_label_volume(labels, affine, args.output)
    print(f"segmented {len(images)} slices; saved {args.output}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from blockrecon.seg.checkpoint import load_model, save_model
    from blockrecon.seg.figures import plot_first_layer
    from blockrecon.seg.prune import count_macs_params, prune_filters

    model, _, extra = load_model(args.model)
    images, labels = _load_data(args)
    example = images[
        :1,
        :,
        : images.shape[2] // model.stride * model.stride,
        : images.shape[3] // model.stride * model.stride,
    ]
    pruned = prune_filters(model, args.ratio, example, global_ranking=args.ranking == "global")
    for name, net in (("before", model), ("after", pruned)):
        macs, params = count_macs_params(net, example)
        print(f"{name}: {params} parameters, {macs / 1e6:.1f} MMAC per image")
        _print_scores(f"{name}", _scores(net, images, labels, args))
    save_model(args.out, pruned, extra={**extra, "pruned_ratio": args.ratio})
    if args.png:
        plot_first_layer(pruned, example, args.png)
    print(f"saved {args.out}")
    return 0


def register(subparsers) -> None:
    """Add ``seg`` with its sub-subcommands train, predict, prune and evaluate."""
    seg = subparsers.add_parser(
        "seg",
        help="cardiac segmentation with lightweight U-Nets",
        description=__doc__.splitlines()[0],
    )
    sub = seg.add_subparsers(dest="seg_command", metavar="SEG_COMMAND", required=True)

    p = sub.add_parser("train", help="train a U-Net (synthetic cine or NIfTI pairs)")
    _data_args(p)
    p.add_argument("--out", type=Path, required=True, help="model checkpoint to write")
    p.add_argument("--base-width", type=int, default=8, help="channels of the first level")
    p.add_argument("--depth", type=int, default=5, help="U-Net levels")
    p.add_argument(
        "--norm", default="batch", choices=("batch", "none"), help="normalization layers"
    )
    p.add_argument("--epochs", type=int, default=10, help="passes over the images")
    p.add_argument("--batch-size", type=int, default=16, help="images per step")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument(
        "--sparsity",
        type=float,
        default=0.0,
        help="group-lasso weight that zeroes unneeded filters for pruning (0.8 in the "
        "benchmark; 0: off)",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="segment a 3D NIfTI stack slice by slice")
    p.add_argument("--model", type=Path, required=True, help="U-Net checkpoint from 'seg train'")
    p.add_argument("--input", type=Path, required=True, help="image .nii/.nii.gz (x, y, slice)")
    p.add_argument("--output", type=Path, required=True, help="label .nii/.nii.gz to write")
    p.set_defaults(func=_predict)

    p = sub.add_parser("prune", help="structured L1 filter pruning, no retraining")
    _data_args(p)
    p.add_argument("--model", type=Path, required=True, help="U-Net checkpoint from 'seg train'")
    p.add_argument("--ratio", type=float, default=0.3, help="fraction of filters to remove")
    p.add_argument(
        "--ranking",
        default="layer",
        choices=("layer", "global"),
        help="remove the ratio from every layer, or rank all filters together",
    )
    p.add_argument("--out", type=Path, required=True, help="pruned checkpoint to write")
    p.add_argument("--png", type=Path, help="figure of first-layer filters and feature maps")
    p.set_defaults(func=_prune)

    p = sub.add_parser("evaluate", help="Dice and HD95 per class")
    _data_args(p)
    p.add_argument("--model", type=Path, required=True, help="U-Net checkpoint from 'seg train'")
    p.add_argument("--json", type=Path, help="write the scores as JSON")
    p.set_defaults(func=_evaluate)
