"""``blockrecon ulm``: simulate ULM acquisitions, train and evaluate detection networks, and
measure the memory of a training step (dense vs sparse)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from blockrecon.cli.options import non_negative_int, positive_float, positive_int, show_progress
from blockrecon.cli.output import check_output_file, write_json

#: Detection methods of ``ulm evaluate`` and ``ulm map``.
METHODS = ("network", "conventional")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ulm",
        help="ultrasound localization microscopy: simulate, train, evaluate, map, memory",
        description="Deep-learning ULM: in-silico acquisitions, dense and sparse detection "
        "networks (per-frame occupancy on an 8x finer grid), their evaluation "
        "against the ground truth (PALA's scores), density and velocity maps of IQ data, "
        "and the memory of a training step.",
    )
    sub = parser.add_subparsers(
        dest="ulm_command", metavar="ULM_COMMAND", required=True, parser_class=type(parser)
    )
    _register_simulate(sub)
    _register_train(sub)
    _register_calibrate(sub)
    _register_evaluate(sub)
    _register_map(sub)
    _register_bench_memory(sub)


# ---------------------------------------------------------------- simulate
def _register_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="write a simulated acquisition (HDF5)")
    p.add_argument("--out", type=Path, required=True, help="output .h5 file")
    p.add_argument(
        "--shape",
        type=positive_int,
        nargs="+",
        default=[32, 32],
        help="spatial grid, 2 or 3 sizes, depth first",
    )
    p.add_argument("--frames", type=positive_int, default=256, help="frames to simulate")
    p.add_argument(
        "--concentration",
        type=float,
        default=10.0,
        help="mean bubbles in the field of view per frame",
    )
    p.add_argument("--snr", type=float, default=30.0, help="SNR in dB")
    p.add_argument(
        "--clutter",
        type=float,
        default=None,
        metavar="DB",
        help="add slowly drifting tissue clutter of this mean power per voxel relative to a "
        "bubble's peak, in dB (tree phantom; default: none; 'ulm evaluate' and 'ulm map' "
        "remove it with --svd-components 2)",
    )
    p.add_argument("--seed", type=int, default=0, help="simulation seed")
    p.add_argument(
        "--phantom",
        choices=("tree", "canals"),
        default="tree",
        help="random vessel tree, or two diverging canals (wall-to-wall 0 to 2 lambda across "
        "the field) on which 'ulm evaluate' measures PALA's gap",
    )
    p.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from blockrecon.io.ulm import write_ulm_acquisition
    from blockrecon.ulm.canals import simulate_canal_pair
    from blockrecon.ulm.simulate import simulate_acquisition

    if args.out.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"--out {args.out} must end in .h5 or .hdf5")
    check_output_file(args.out)
    options = {"seed": args.seed, "snr_db": args.snr, "progress": show_progress(args)}
    if args.phantom == "canals":
        if args.clutter is not None:
            raise ValueError("--clutter is for --phantom tree")
        acq = simulate_canal_pair(args.shape, args.frames, args.concentration, **options)
    else:
        acq = simulate_acquisition(
            args.shape, args.frames, args.concentration, clutter_db=args.clutter, **options
        )
    write_ulm_acquisition(args.out, acq)
    print(
        f"Wrote {args.out}: {'x'.join(map(str, acq.spatial_shape))} x {acq.n_frames} frames, "
        f"{len(acq.frames)} bubble positions",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------- train
def _register_train(sub) -> None:
    p = sub.add_parser("train", help="train a dense or sparse detection network")
    p.add_argument("--data", type=Path, required=True, nargs="+", help="acquisition .h5 files")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.pt)")
    p.add_argument(
        "--kind",
        choices=("dense", "sparse"),
        default="sparse",
        help="dense or sparse-tensor network",
    )
    p.add_argument(
        "--block-frames",
        type=positive_int,
        default=16,
        help="frames per training block (multiple of 16)",
    )
    p.add_argument("--steps", type=positive_int, default=200, help="training steps")
    p.add_argument("--batch", type=positive_int, default=4, help="blocks per step")
    p.add_argument(
        "--lr", type=positive_float, default=1e-2, help="initial learning rate, cosine decay to 0"
    )
    p.add_argument(
        "--bce-weight",
        type=float,
        default=1.0,
        help="weight of the per-site cross-entropy added to the Dice loss",
    )
    p.add_argument(
        "--plain-bce",
        action="store_true",
        help="sparse: mean cross-entropy over all sites instead of the "
        "class-balanced one (dense networks always use the plain mean)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights and of the block sampling"
    )
    p.add_argument(
        "--channels",
        type=positive_int,
        nargs=3,
        default=[8, 16, 32],
        help="encoder channels at the three scales",
    )
    p.add_argument(
        "--fine-channels", type=positive_int, default=8, help="channels of the upsampling tail"
    )
    p.add_argument(
        "--sparsifier",
        choices=("threshold", "topk", "learned"),
        default="threshold",
        help="sparse input sites",
    )
    p.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help="threshold on |x|^2 of the normalized block (default: the library's "
        "input threshold, 0.01), or the top-k fraction (required with topk)",
    )
    p.add_argument(
        "--mask-steps", type=positive_int, default=100, help="training steps of the learned mask"
    )
    p.add_argument(
        "--keep-margin",
        type=int,
        default=None,
        help="sparse: keep the target cells and every cell within this many cells of one "
        "through the network's pruning, so that its fine heads learn to reject empty cells "
        "next to a bubble (default: 1 for 3D data, as the shipped 3D network was trained; 0 "
        "for 2D). It costs time and memory: at 32^3 x 16 frames up to 6x and 3x a step "
        "(benchmarks/README.md)",
    )
    p.add_argument(
        "--calibration-frames",
        type=positive_int,
        default=None,
        help="choose the decoding threshold on the first this many frames of each "
        "acquisition (default: all of them; decoding at the 13 thresholds of the calibration "
        "grid costs 0.6 s at 38 bubbles/frame to 24 s at 1214/frame per 32^3 x 16-frame "
        "block, 2 threads)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="training checkpoint (default: OUT with suffix .ckpt.pt), written "
        "every --checkpoint-every steps and removed once OUT is written",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=50,
        help="training steps between checkpoints",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in the checkpoint (give the same arguments)",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="MODEL",
        help="start from this trained model's weights (its architecture and input "
        "sparsifier; --kind must match) instead of a fresh network, e.g. to "
        "continue at a lower learning rate",
    )
    p.set_defaults(func=_train)


def _config(args: argparse.Namespace, spatial_dims: int):
    """The architecture ``args`` ask for, for data of ``spatial_dims`` spatial axes."""
    from blockrecon.ulm.nets import UlmNetConfig

    return UlmNetConfig(
        spatial_dims=spatial_dims, channels=tuple(args.channels), fine_channels=args.fine_channels
    )


def _initial_model(args: argparse.Namespace, blocks):
    """A fresh network of ``args``' architecture (and input sparsifier, a learned mask trained
    here unless the run is resumed)."""
    from blockrecon.ulm.learned_mask import (
        INPUT_THRESHOLD,
        InputSparsifier,
        LearnedMask,
        train_learned_mask,
    )
    from blockrecon.ulm.training import build_model

    config = _config(args, blocks.inputs.ndim - 3)
    sparsifier = None
    if args.kind == "sparse":
        mask = None
        if args.sparsifier == "learned":
            mask = LearnedMask(config.spatial_dims)
            if not args.resume:  # a resumed run restores the trained mask
                train_learned_mask(
                    mask, blocks, args.mask_steps, seed=args.seed, progress=show_progress(args)
                )
        if args.sparsifier == "topk" and args.sparsity is None:
            raise ValueError("--sparsifier topk needs --sparsity FRACTION (of voxels kept)")
        value = INPUT_THRESHOLD if args.sparsity is None else args.sparsity
        sparsifier = InputSparsifier(args.sparsifier, value, mask)
    return build_model(args.kind, config, sparsifier)


def _keep_margin(args: argparse.Namespace, spatial_dims: int) -> int:
    """``--keep-margin``, or its default for the kind of network and data."""
    if args.keep_margin is None:
        return 1 if args.kind == "sparse" and spatial_dims == 3 else 0
    if args.keep_margin < 0:
        raise ValueError(f"--keep-margin must be >= 0, got {args.keep_margin}")
    if args.keep_margin and args.kind != "sparse":
        raise ValueError("--keep-margin applies to sparse networks (--kind sparse)")
    return args.keep_margin


def _train(args: argparse.Namespace) -> int:
    from blockrecon.io.ulm import read_ulm_acquisition
    from blockrecon.ulm.run import TrainingInterrupted, checkpoint_for, train_model_file

    checkpoint = checkpoint_for(args.out, args.checkpoint, args.resume)
    check_output_file(args.out)
    check_output_file(checkpoint, "--checkpoint")
    acquisitions = [read_ulm_acquisition(p) for p in args.data]
    init = _init_model(args)
    config = init.net.config if init is not None else _config(args, acquisitions[0].iq.ndim - 1)
    for path, acq in zip(args.data, acquisitions, strict=True):
        config.check_data(tuple(acq.iq.shape), args.block_frames, str(path))
    keep_margin = _keep_margin(args, config.spatial_dims)
    try:
        run = train_model_file(
            args.out,
            acquisitions,
            lambda blocks: init if init is not None else _initial_model(args, blocks),
            block_frames=args.block_frames,
            steps=args.steps,
            checkpoint=checkpoint,
            seed=args.seed,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            progress=show_progress(args),
            lr=args.lr,
            batch_size=args.batch,
            bce_weight=args.bce_weight,
            class_balanced=False if args.plain_bce else None,
            keep_margin=keep_margin,
            calibration_frames=args.calibration_frames,
        )
    except TrainingInterrupted as stop:
        if stop.checkpoint is not None:
            print(
                f"Interrupted; the last checkpoint is {stop.checkpoint}: continue with the "
                "same arguments and --resume",
                file=sys.stderr,
            )
        raise
    model = run.model
    print(
        f"Wrote {args.out}: {args.kind} network, {args.steps} steps on "
        f"{run.n_blocks} blocks, loss {run.losses[0]:.3f} -> {run.losses[-1]:.3f}, "
        f"decoding threshold {model.threshold} (training Jaccard "
        f"{run.jaccard[model.threshold]:.3f})",
        file=sys.stderr,
    )
    return 0


def _init_model(args: argparse.Namespace):
    """``--init``'s model (its kind checked against ``--kind``), or None."""
    from blockrecon.ulm.training import load_model

    if args.init is None:
        return None
    model = load_model(args.init).model
    if model.kind != args.kind:
        raise ValueError(f"--init {args.init} is a {model.kind} network, not --kind {args.kind}")
    return model


# ---------------------------------------------------------------- calibrate
def _register_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="choose a model's decoding threshold on acquisitions (rewrites it)"
    )
    p.add_argument("--model", type=Path, required=True, help="model file, rewritten in place")
    p.add_argument("--data", type=Path, required=True, nargs="+", help="acquisition .h5 files")
    p.add_argument(
        "--block-frames", type=positive_int, default=16, help="frames per block (as in training)"
    )
    p.add_argument(
        "--smoothing",
        action="store_true",
        help="then choose the smoothing of blocks with few detections too (sigma, smoothed "
        "threshold, density limit, merge radius and merge density limit; none if no "
        "candidate scores better)",
    )
    p.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from blockrecon.io.ulm import read_ulm_acquisition
    from blockrecon.ulm.evaluation import calibrate_smoothing, calibrate_threshold
    from blockrecon.ulm.training import file_metadata, load_model, save_model

    loaded = load_model(args.model)
    model = loaded.model
    acquisitions = [read_ulm_acquisition(p) for p in args.data]
    for path, acq in zip(args.data, acquisitions, strict=True):
        model.net.config.check_data(tuple(acq.iq.shape), args.block_frames, str(path))
    jaccard = calibrate_threshold(
        model,
        acquisitions,
        args.block_frames,
        progress=show_progress(args),
    )
    print("  ".join(f"{t:g}: {j:.3f}" for t, j in jaccard.items()))
    if args.smoothing:
        smoothed = calibrate_smoothing(
            model, acquisitions, args.block_frames, progress=show_progress(args)
        )
        print(f"smoothing {model.smoothing}: {smoothed[model.smoothing]:.3f}")
    save_model(args.model, model, file_metadata(loaded))
    print(
        f"Wrote {args.model}: decoding threshold {model.threshold}, smoothing {model.smoothing}",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------- evaluate
def _add_model_option(p: argparse.ArgumentParser) -> None:
    """``--model`` of ``ulm evaluate`` and ``ulm map`` (optional: see :func:`_model_and_data`)."""
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model file from 'ulm train' (default: the network shipped with blockrecon for "
        "data of this dimensionality, blockrecon.ulm.pretrained)",
    )


def _add_method_option(p: argparse.ArgumentParser) -> None:
    """``--method`` of ``ulm evaluate`` and ``ulm map``."""
    p.add_argument(
        "--method",
        choices=METHODS,
        default="network",
        help="network: the detections of --model; conventional: conventional ULM (local "
        "maxima above the noise, weighted centroids; blockrecon.ulm.conventional_ulm with its "
        "defaults), which needs no model and beats the shipped 3D network on sparse data "
        "(benchmarks/README.md, 'The shipped ULM networks')",
    )


def _add_clutter_option(p: argparse.ArgumentParser) -> None:
    """``--svd-components`` of ``ulm evaluate`` and ``ulm map`` (see :func:`_without_clutter`)."""
    p.add_argument(
        "--svd-components",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="SVD clutter filter: remove the N leading singular components of the frames "
        "(all frames of --data at once; blockrecon.ulm.svd_clutter_filter) before detection, "
        "for either method; 0 (default): data already filtered",
    )


def _without_clutter(args: argparse.Namespace, acq):
    """``acq`` with the ``--svd-components`` leading singular components of its IQ frames
    removed (unchanged for 0)."""
    from dataclasses import replace

    from blockrecon.ulm import svd_clutter_filter

    if args.svd_components == 0:
        return acq
    if args.svd_components >= acq.n_frames:
        raise ValueError(
            f"--svd-components {args.svd_components} must be below the {acq.n_frames} frames "
            f"of {args.data}"
        )
    return replace(acq, iq=svd_clutter_filter(acq.iq, args.svd_components))


def _register_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="detect bubbles with a model and score them")
    p.add_argument("--data", type=Path, required=True, help="acquisition .h5 file")
    _add_model_option(p)
    _add_method_option(p)
    _add_clutter_option(p)
    p.add_argument(
        "--block-frames", type=positive_int, default=16, help="frames per block (as in training)"
    )
    p.add_argument("--json", type=Path, default=None, help="write the scores as JSON here")
    p.set_defaults(func=_evaluate)


def _model_and_data(args: argparse.Namespace, read: Callable):
    """``(loaded model or None, model file or None, acquisition)`` of ``ulm evaluate`` and
    ``ulm map``. With ``--method network``: the model file ``--model`` (read first, so that
    its errors come first), or without it the shipped network of the data's dimensionality,
    checked against the data (``read(--data)``) before any work. With ``--method
    conventional``: no model (``--model`` is refused). The acquisition is clutter-filtered
    last (``--svd-components``, :func:`_without_clutter`)."""
    from blockrecon.ulm.pretrained import pretrained_ulm_path
    from blockrecon.ulm.training import load_model

    if args.method == "conventional":
        if args.model is not None:
            raise ValueError("--model is for --method network; conventional ULM uses no model")
        return None, None, _without_clutter(args, read(args.data))
    path = args.model
    loaded = None if path is None else load_model(path)
    acq = read(args.data)
    if loaded is None:
        path = pretrained_ulm_path(acq.iq.ndim - 1)
        print(f"Using the shipped network {path}", file=sys.stderr)
        loaded = load_model(path)
    loaded.model.net.config.check_data(tuple(acq.iq.shape), args.block_frames, str(args.data))
    return loaded, path, _without_clutter(args, acq)


def _detections(args: argparse.Namespace, loaded, acq) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(positions, frames, scored frames)`` of ``--method``: the network's detections in
    whole blocks of ``--block-frames`` (with a warning on stderr when their density lies where
    conventional ULM scored better on the model's held-out data,
    :func:`blockrecon.ulm.held_out.density_advice`), or conventional ULM's localizations in
    every frame."""
    from blockrecon.ulm import conventional_ulm
    from blockrecon.ulm.blocks import acquisition_blocks
    from blockrecon.ulm.evaluation import detect_bubbles, scored_frames
    from blockrecon.ulm.held_out import HeldOutTable, density_advice

    if loaded is None:
        found = conventional_ulm(acq.iq, acq.pixel_size, acq.frame_rate)
        return found.positions, found.frames, acq.n_frames
    blocks = acquisition_blocks(acq, args.block_frames)
    positions, frames = detect_bubbles(loaded.model, blocks, progress=show_progress(args))
    n_frames = scored_frames(blocks)
    advice = density_advice(
        HeldOutTable.from_extra(loaded.extra), len(frames), n_frames, acq.spatial_shape
    )
    if advice is not None:
        print(advice, file=sys.stderr)
    return positions, frames, n_frames


def _evaluate(args: argparse.Namespace) -> int:
    from blockrecon.io.ulm import read_ulm_acquisition
    from blockrecon.ulm.evaluation import score_detections

    if args.json is not None:
        check_output_file(args.json, "--json")
    loaded, model_file, acq = _model_and_data(args, read_ulm_acquisition)
    positions, frames, n_frames = _detections(args, loaded, acq)
    localization, pala = score_detections(acq, positions, frames, n_frames=n_frames)
    scores, pala = asdict(localization), asdict(pala)
    print("  ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    print(_pala_line(pala))
    if args.json is not None:
        model = None if model_file is None else str(model_file)
        write_json(
            args.json,
            {"data": str(args.data), "method": args.method, "model": model, **scores, "pala": pala},
        )
    return 0


def _pala_line(pala: dict) -> str:
    """PALA's scores in one line (the gap is n/a without a canal pair)."""
    gap = "n/a (no canal pair)" if math.isnan(pala["gap"]) else f"{pala['gap']:.3g} lambda"
    return (
        f"PALA: rmse {pala['rmse']:.4g}  mean_error {pala['mean_error']:.4g}  jaccard "
        f"{pala['jaccard']:.4g}  precision {pala['precision']:.4g}  recall "
        f"{pala['recall']:.4g}  gap {gap}  saturation {pala['saturation']:.4g}  "
        f"global score {pala['global_score']:.3g} (of {', '.join(pala['components'])})"
    )


# ---------------------------------------------------------------- map
def _register_map(sub) -> None:
    p = sub.add_parser(
        "map",
        help="density (and velocity) map of IQ data from a trained network (NIfTI, PNG)",
        description="Detect bubbles with a trained network block by block (or with "
        "conventional ULM), track them and accumulate their density (and mean velocity) on a "
        "grid finer than the image; write NIfTI (fine voxel size in mm in the header) and a "
        "maximum-intensity projection PNG.",
    )
    _add_model_option(p)
    _add_method_option(p)
    _add_clutter_option(p)
    p.add_argument(
        "--data", type=Path, required=True, help="acquisition .h5 file (only /iq is needed)"
    )
    p.add_argument("--out", type=Path, required=True, help="density map (.nii or .nii.gz)")
    p.add_argument(
        "--velocity",
        action="store_true",
        help="also write the mean velocity (mm/s) as a NIfTI vector image OUT-stem_velocity",
    )
    p.add_argument(
        "--fine-factor",
        type=positive_int,
        default=8,
        help="fine pixels per image pixel; must divide the network's 8x grid (1, 2, 4 or 8)",
    )
    p.add_argument("--mip", type=Path, default=None, help="maximum-intensity projection (.png)")
    p.add_argument(
        "--block-frames", type=positive_int, default=16, help="frames per block (as in training)"
    )
    p.add_argument(
        "--max-linking-distance",
        type=positive_float,
        default=None,
        help="largest step (lambda) between linked detections (default: that of conventional "
        "ULM, blockrecon.ulm.track.MAX_LINKING_DISTANCE)",
    )
    p.add_argument(
        "--max-gap",
        type=int,
        default=None,
        help="missing frames a track may bridge (default: blockrecon.ulm.track.MAX_GAP)",
    )
    p.add_argument(
        "--min-length",
        type=positive_int,
        default=None,
        help="detections of a kept track (default: blockrecon.ulm.track.MIN_LENGTH)",
    )
    p.set_defaults(func=_map)


def _map_outputs(args: argparse.Namespace) -> list[Path]:
    """The files ``ulm map`` writes, each checked writable before any work."""
    from blockrecon.io.ulm_maps import velocity_path

    outputs = {args.out: "--out"}  # velocity_path checks the NIfTI suffix
    if args.velocity:
        outputs[velocity_path(args.out)] = "--out (velocity)"
    if args.mip is not None:
        if args.mip.suffix != ".png":
            raise ValueError(f"--mip {args.mip} must end in .png")
        outputs[args.mip] = "--mip"
    for path, option in outputs.items():
        check_output_file(path, option)
    return list(outputs)


def _map(args: argparse.Namespace) -> int:
    from blockrecon.io.ulm import read_ulm_iq
    from blockrecon.io.ulm_maps import voxel_size_mm, write_track_maps
    from blockrecon.ulm.evaluation import NETWORK_SCALE
    from blockrecon.ulm.maps import track_maps
    from blockrecon.ulm.track import MAX_GAP, MAX_LINKING_DISTANCE, MIN_LENGTH, link_tracks

    _map_outputs(args)
    if NETWORK_SCALE % args.fine_factor:
        raise ValueError(
            f"--fine-factor {args.fine_factor} must divide the network's {NETWORK_SCALE}x grid "
            f"(one of {[f for f in range(1, NETWORK_SCALE + 1) if NETWORK_SCALE % f == 0]})"
        )
    max_gap = MAX_GAP if args.max_gap is None else args.max_gap
    if max_gap < 0:
        raise ValueError(f"--max-gap must be >= 0, got {max_gap}")
    loaded, _, acq = _model_and_data(args, read_ulm_iq)
    positions, frames, _ = _detections(args, loaded, acq)
    track_ids = link_tracks(
        positions,
        frames,
        args.max_linking_distance or MAX_LINKING_DISTANCE,
        max_gap=max_gap,
        min_length=args.min_length or MIN_LENGTH,
    )
    maps = track_maps(
        positions,
        frames,
        track_ids,
        acq.spatial_shape,
        acq.pixel_size,
        acq.frame_rate,
        upsampling=args.fine_factor,
    )
    written = write_track_maps(args.out, maps, acq.wavelength, velocity=args.velocity, mip=args.mip)
    size = voxel_size_mm(maps, acq.wavelength)
    n_tracks = int(track_ids.max()) + 1 if len(track_ids) else 0
    print(
        f"{len(frames)} detections ({args.method}), {n_tracks} tracks "
        f"({int((track_ids >= 0).sum())} detections); fine grid "
        f"{'x'.join(map(str, maps.density.shape))}, voxel "
        f"{' x '.join(f'{v * 1e3:.4g}' for v in size)} um",
        file=sys.stderr,
    )
    print(f"Wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- bench-memory
def _register_bench_memory(sub) -> None:
    p = sub.add_parser("bench-memory", help="peak memory of one training step, dense vs sparse")
    p.add_argument(
        "--shape",
        type=positive_int,
        nargs="+",
        default=[32, 32],
        help="block spatial size, 2 or 3 sizes",
    )
    p.add_argument("--frames", type=positive_int, default=512, help="frames of the block")
    p.add_argument(
        "--concentration",
        type=float,
        default=20.0,
        help="mean bubbles in the field of view per frame",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="sparse model file (trained heads prune realistically); default an untrained network",
    )
    p.add_argument(
        "--dense-real",
        action="store_true",
        help="also run the dense step for real (otherwise meta-device count only)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the weights")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    p.set_defaults(func=_bench_memory)


def _bench_memory(args: argparse.Namespace) -> int:
    from blockrecon.ulm.blocks import acquisition_blocks
    from blockrecon.ulm.memory import training_step_memory
    from blockrecon.ulm.nets import UlmNetConfig
    from blockrecon.ulm.simulate import simulate_acquisition
    from blockrecon.ulm.training import build_model, load_model

    acq = simulate_acquisition(
        args.shape, args.frames, args.concentration, seed=args.seed, progress=show_progress(args)
    )
    blocks = acquisition_blocks(acq, args.frames)
    torch.manual_seed(args.seed)
    if args.model is not None:
        sparse = load_model(args.model).model
        if sparse.kind != "sparse" or sparse.net.config.spatial_dims != len(args.shape):
            raise ValueError(f"--model {args.model} is not a {len(args.shape)}D sparse model")
        config = sparse.net.config
    else:
        config = UlmNetConfig(spatial_dims=len(args.shape))
        sparse = build_model("sparse", config)
    dense = build_model("dense", config)
    rows = {
        "dense (meta count)": training_step_memory(dense, blocks.inputs, blocks.targets, meta=True)
    }
    if args.dense_real:
        rows["dense"] = training_step_memory(dense, blocks.inputs, blocks.targets)
    rows["sparse"] = training_step_memory(sparse, blocks.inputs, blocks.targets)
    ratio = rows["dense (meta count)"].peak_bytes / max(rows["sparse"].peak_bytes, 1)
    print(f"{'network':20s} {'peak MiB':>12s}  sites per scale")
    for name, row in rows.items():
        print(f"{name:20s} {row.peak_bytes / 2**20:12.1f}  {row.sites}")
    print(f"dense / sparse: {ratio:.1f}x")
    if args.json is not None:
        write_json(
            args.json,
            {
                "shape": list(args.shape),
                "frames": args.frames,
                "concentration": args.concentration,
                "ratio": ratio,
                "rows": {
                    k: {"peak_bytes": v.peak_bytes, "sites": v.sites} for k, v in rows.items()
                },
            },
        )
    return 0
