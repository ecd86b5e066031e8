"""Scoring a detection network on an acquisition with its ground truth (PALA rules), and
choosing the occupancy threshold its 8x map is decoded with.

The network's detections in every block are decoded to positions (lambda) and scored with
:func:`blockrecon.ulm.metrics.localization_scores`, the same rules as conventional ULM;
:func:`score_detections` adds PALA's map scores (saturation, gap on a canal pair, global score;
:mod:`blockrecon.ulm.pala_scores`) of the tracks of any method's detections.

A network trained with a Dice loss rarely puts occupancy > 0.5 on the exact 1/16-pixel cell of
a bubble early in training: its fine map spreads a bubble over a few cells. The decoding
threshold is therefore a property of the trained model, chosen on training data by
:func:`calibrate_threshold` (the Jaccard-maximizing value of a grid) and stored in the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from blockrecon.progress import progress_bar
from blockrecon.sparse import SparseTensor
from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.blocks import UlmBlocks, acquisition_blocks
from blockrecon.ulm.canals import CanalPair, canal_pair_gap
from blockrecon.ulm.decode import Detections, GatedSmoothing, decode_occupancy, merge_close
from blockrecon.ulm.maps import track_maps
from blockrecon.ulm.metrics import LocalizationScores, localization_scores
from blockrecon.ulm.pala_scores import PalaScores, pala_scores
from blockrecon.ulm.track import MAX_GAP, MAX_LINKING_DISTANCE, MIN_LENGTH, link_tracks
from blockrecon.ulm.training import UlmModel, predict

#: Thresholds tried by :func:`calibrate_threshold`. Both shipped networks are best at 0.01-0.02
#: (their occupancy falls off slowly away from a bubble), below 0.01 no better.
DECODE_THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Gaussian widths (lambda), smoothed thresholds and density limits (detections per frame and
#: input voxel) that :func:`calibrate_smoothing` tries by default. On the shipped 3D network's
#: held-out data smoothing pays up to about 0.014 (303 bubbles/frame in a 32^3 block) and costs
#: from about 0.023 (1214/frame) (benchmarks/README.md, "The shipped ULM networks").
SMOOTHING_SIGMAS = (0.0625, 0.094)
SMOOTHED_THRESHOLDS = (0.001, 0.002)
SMOOTHING_LIMITS = (0.005, 0.01, 0.015)
#: Merge radii (lambda; 0: none) that :func:`calibrate_smoothing` tries by default. On training
#: simulations of 16-76 bubbles/frame the first 32^3 network's (800 steps) smoothed detections
#: include duplicates 0.17-0.35 lambda from the bubble another detection matched, and at
#: 16/frame its held-out Jaccard still rose from 0.5 to 0.6 lambda (benchmarks/README.md,
#: "Merging duplicates"). The shipped one (1200 steps) merges within 0.5 lambda in blocks of
#: under 0.0015 detections per frame and input voxel (:data:`MERGE_LIMITS`).
MERGE_RADII = (0.0, 0.25, 0.4, 0.5, 0.6)
#: Merge density limits (detections per frame and input voxel; None: the smoothing's) that
#: :func:`calibrate_smoothing` tries with each radius. In a 32^3 block they fall between 16,
#: 38, 76 and 152 bubbles/frame (density 0.00049, 0.0012, 0.0023, 0.0046): merging true
#: neighbours costs more as bubbles crowd.
MERGE_LIMITS = (None, 0.00075, 0.0015, 0.003)
#: Refinement of the networks' finest occupancy map.
NETWORK_SCALE = 8


def decode_blocks(
    logits: Iterable[torch.Tensor | SparseTensor],
    blocks: UlmBlocks,
    threshold: float,
    split_radius: float | None,
    smoothing: GatedSmoothing | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bubbles decoded from the 8x occupancy logits of each block of ``blocks`` (one
    (1, T, *fine) dense or sparse map per block, in order; see
    :func:`blockrecon.ulm.decode.decode_occupancy`, and ``smoothing`` for the blocks with few
    bubbles): float32 positions ``(n, ndim)`` in lambda and int64 acquisition frames ``(n,)``."""
    found = [
        _gated_decode(out, blocks, index, threshold, split_radius, smoothing)
        for index, out in enumerate(logits)
    ]
    ndim = len(blocks.pixel_size)
    if not found:
        return torch.zeros(0, ndim), torch.zeros(0, dtype=torch.int64)
    return torch.cat([f.positions for f in found]), torch.cat([f.frames for f in found])


def _gated_decode(
    out: torch.Tensor | SparseTensor,
    blocks: UlmBlocks,
    index: int,
    threshold: float,
    split_radius: float | None,
    smoothing: GatedSmoothing | None,
) -> Detections:
    """The bubbles of block ``index`` of ``blocks`` from its 8x logits ``out``: decoded at
    ``threshold``, then again smoothed if ``smoothing`` applies to their density."""
    found = _decode_block(out, blocks, index, threshold, split_radius)
    density = len(found.frames), _block_sites(blocks)
    if smoothing is not None and smoothing.applies(*density):
        found = _decode_block(
            out, blocks, index, smoothing.threshold, split_radius, smoothing.sigma
        )
        if smoothing.merges(*density):
            found = merge_close(found, smoothing.merge)
    return found


def _decode_block(
    out: torch.Tensor | SparseTensor,
    blocks: UlmBlocks,
    index: int,
    threshold: float,
    split_radius: float | None,
    sigma: float | None = None,
) -> Detections:
    """:func:`~blockrecon.ulm.decode.decode_occupancy` of block ``index``'s 8x logits."""
    first = blocks.first_frames[index : index + 1]
    return decode_occupancy(
        out,
        blocks.pixel_size,
        NETWORK_SCALE,
        threshold,
        first,
        split_radius=split_radius,
        smoothing=sigma,
    )


def _block_sites(blocks: UlmBlocks) -> int:
    """Frames times input voxels of one block."""
    return math.prod(blocks.inputs.shape[2:])


def scored_frames(blocks: UlmBlocks) -> int:
    """Frames of the acquisition that whole blocks cover (frames ``0 .. n - 1``)."""
    return blocks.inputs.shape[0] * blocks.inputs.shape[2]


def score_logits(
    logits: Iterable[torch.Tensor | SparseTensor],
    blocks: UlmBlocks,
    acquisition: UlmAcquisition,
    threshold: float,
    split_radius: float | None,
) -> LocalizationScores:
    """Decode the 8x occupancy logits of each block of ``blocks`` (see :func:`decode_blocks`)
    and score them against ``acquisition``'s truth on the frames the blocks cover."""
    positions, frames = decode_blocks(logits, blocks, threshold, split_radius)
    used = acquisition.frames < scored_frames(blocks)
    return localization_scores(
        acquisition.positions[used], acquisition.frames[used], positions, frames
    )


@torch.no_grad()
def detect_bubbles(
    model: UlmModel, blocks: UlmBlocks, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the network on every block (one at a time, with a progress bar) and decode its 8x
    map at ``model.threshold`` (and ``model.smoothing``): float32 positions ``(n, ndim)``
    (lambda) and int64 frames ``(n,)`` of the acquisition."""
    model.net.eval()
    n_blocks = blocks.inputs.shape[0]
    logits = (
        model(blocks.inputs[i : i + 1])[NETWORK_SCALE]
        for i in progress_bar(range(n_blocks), f"detect {model.kind}", progress, total=n_blocks)
    )
    return decode_blocks(logits, blocks, model.threshold, model.split_radius, model.smoothing)


def score_detections(
    acquisition: UlmAcquisition,
    positions: torch.Tensor,
    frames: torch.Tensor,
    *,
    n_frames: int | None = None,
    upsampling: int = NETWORK_SCALE,
) -> tuple[LocalizationScores, PalaScores]:
    """Localization and PALA scores of a method's detections on ``acquisition``.

    The detections are scored against the truth of frames ``0 .. n_frames - 1`` (default: all),
    tracked (:func:`blockrecon.ulm.track.link_tracks`, its defaults) and accumulated into a
    density map ``upsampling`` times finer than the image (:func:`blockrecon.ulm.maps.track_maps`)
    for the saturation; on a canal pair (``acquisition.metadata``, see
    :mod:`blockrecon.ulm.canals`) the gap is measured against the map of the true tracks.

    Args:
        positions: float ``(n, ndim)`` detections, lambda; ``ndim`` that of the acquisition.
        frames: int ``(n,)`` frame of each detection.

    Raises:
        ValueError: detections of another dimensionality than the acquisition, or bad tables.
    """
    n_frames = acquisition.n_frames if n_frames is None else n_frames
    used = acquisition.frames < n_frames
    truth = acquisition.positions[used], acquisition.frames[used]
    localization = localization_scores(*truth, positions, frames)
    shape, pixel = acquisition.spatial_shape, acquisition.pixel_size
    maps = track_maps(
        positions,
        frames,
        link_tracks(
            positions, frames, MAX_LINKING_DISTANCE, max_gap=MAX_GAP, min_length=MIN_LENGTH
        ),
        shape,
        pixel,
        acquisition.frame_rate,
        upsampling=upsampling,
    )
    gap = None
    pair = CanalPair.from_metadata(acquisition.metadata)
    if pair is not None:
        true_map = track_maps(
            *truth,
            acquisition.track_ids[used],
            shape,
            pixel,
            acquisition.frame_rate,
            upsampling=upsampling,
        )
        gap = canal_pair_gap(maps.density, true_map.density, pixel, upsampling, pair)
    return localization, pala_scores(localization, maps.density, gap)


def _scores(
    model: UlmModel,
    acquisition: UlmAcquisition,
    block_frames: int,
    thresholds: Sequence[float],
    progress: bool,
) -> list[LocalizationScores]:
    """Scores of the detections decoded at each threshold (one network pass)."""
    blocks = acquisition_blocks(acquisition, block_frames)
    outputs = predict(model, blocks, progress=progress)
    return [
        score_logits(
            [out[NETWORK_SCALE] for out in outputs],
            blocks,
            acquisition,
            threshold,
            model.split_radius,
        )
        for threshold in thresholds
    ]


def smoothing_candidates(
    sigmas: Sequence[float] = SMOOTHING_SIGMAS,
    thresholds: Sequence[float] = SMOOTHED_THRESHOLDS,
    limits: Sequence[float] = SMOOTHING_LIMITS,
    merges: Sequence[float] = MERGE_RADII,
    merge_limits: Sequence[float | None] = MERGE_LIMITS,
) -> list[GatedSmoothing]:
    """Every :class:`~blockrecon.ulm.decode.GatedSmoothing` of the given sigmas (lambda),
    smoothed thresholds, density limits (detections per frame and input voxel), merge radii
    (lambda) and, for a radius above 0, merge density limits up to the smoothing's."""
    return [
        GatedSmoothing(sigma, threshold, below, merge, merge_below)
        for sigma in sigmas
        for threshold in thresholds
        for below in limits
        for merge in merges
        for merge_below in ([None] if merge == 0 else merge_limits)
        if merge_below is None or merge_below <= below
    ]


def calibrate_smoothing(
    model: UlmModel,
    acquisitions: Sequence[UlmAcquisition],
    block_frames: int,
    candidates: Sequence[GatedSmoothing] | None = None,
    progress: bool = True,
) -> dict[GatedSmoothing | None, float]:
    """Set ``model.smoothing`` to the candidate (default :func:`smoothing_candidates`), or None,
    of largest Jaccard index on ``acquisitions`` (true and false positives pooled over them),
    decoding at ``model.threshold``; returns {candidate: Jaccard}, None first (kept on a tie).

    Call it after :func:`calibrate_threshold`: the density that gates a block is that of its
    decoding at ``model.threshold``.
    """
    candidates = smoothing_candidates() if candidates is None else list(candidates)
    if not acquisitions or not candidates:
        raise ValueError("need at least one acquisition and one smoothing candidate")
    totals = dict.fromkeys([None, *candidates], (0, 0, 0))
    for acquisition in progress_bar(acquisitions, "calibrate smoothing", progress):
        blocks = acquisition_blocks(acquisition, block_frames)
        outputs = predict(model, blocks, progress=False)
        for index, out in enumerate(outputs):
            block = _block_counts(model, acquisition, blocks, index, out[NETWORK_SCALE], candidates)
            totals = {c: tuple(np.add(totals[c], block[c])) for c in totals}
    jaccard = {c: float(tp / max(tp + fp + fn, 1)) for c, (tp, fp, fn) in totals.items()}
    model.smoothing = max(jaccard, key=jaccard.get)
    return jaccard


def _block_counts(
    model: UlmModel,
    acquisition: UlmAcquisition,
    blocks: UlmBlocks,
    index: int,
    logits: torch.Tensor | SparseTensor,
    candidates: Sequence[GatedSmoothing],
) -> dict[GatedSmoothing | None, tuple[int, int, int]]:
    """(true positives, false positives, false negatives) of block ``index`` decoded without
    smoothing (key None) and with each candidate (each smoothed decoding, and each merge of
    it, computed once; the candidates differ in their gates)."""
    first = int(blocks.first_frames[index])
    used = (acquisition.frames >= first) & (acquisition.frames < first + blocks.inputs.shape[2])
    truth = acquisition.positions[used], acquisition.frames[used]

    def counts(found: Detections) -> tuple[int, int, int]:
        s = localization_scores(*truth, found.positions, found.frames)
        return s.true_positives, s.false_positives, s.false_negatives

    plain = _decode_block(logits, blocks, index, model.threshold, model.split_radius)
    result = {None: counts(plain)}
    density = len(plain.frames), _block_sites(blocks)
    smoothed, merged = {}, {}
    for candidate in candidates:
        if not candidate.applies(*density):
            result[candidate] = result[None]
            continue
        key = (candidate.sigma, candidate.threshold)
        if key not in smoothed:
            smoothed[key] = _decode_block(logits, blocks, index, key[1], model.split_radius, key[0])
        radius = candidate.merge if candidate.merges(*density) else 0.0
        if (*key, radius) not in merged:
            merged[(*key, radius)] = counts(merge_close(smoothed[key], radius))
        result[candidate] = merged[(*key, radius)]
    return result


def evaluate_model(
    model: UlmModel, acquisition: UlmAcquisition, block_frames: int, progress: bool = True
) -> tuple[LocalizationScores, PalaScores]:
    """Detect bubbles in every block of ``acquisition`` (decoded at ``model.threshold``) and
    score them against its truth (:func:`score_detections`, on the 8x grid): the localization
    scores and PALA's scores (:mod:`blockrecon.ulm.pala_scores`), as a tuple.

    Positions are converted to lambda with the acquisition's pixel size; only the frames covered
    by whole blocks of ``block_frames`` are scored.
    """
    blocks = acquisition_blocks(acquisition, block_frames)
    positions, frames = detect_bubbles(model, blocks, progress)
    return score_detections(acquisition, positions, frames, n_frames=scored_frames(blocks))


def calibrate_threshold(
    model: UlmModel,
    acquisitions: Sequence[UlmAcquisition],
    block_frames: int,
    thresholds: Sequence[float] = DECODE_THRESHOLDS,
    progress: bool = True,
) -> dict[float, float]:
    """Set ``model.threshold`` to the threshold of largest Jaccard index on ``acquisitions``
    (true and false positives pooled over them); returns {threshold: Jaccard}."""
    if not acquisitions or not all(0 < t < 1 for t in thresholds) or not thresholds:
        raise ValueError("need at least one acquisition and thresholds in (0, 1)")
    per_acquisition = [
        _scores(model, acq, block_frames, thresholds, progress) for acq in acquisitions
    ]
    jaccard = {}
    for i, threshold in enumerate(thresholds):
        tp, fp, fn = (
            sum(getattr(s[i], name) for s in per_acquisition)
            for name in ("true_positives", "false_positives", "false_negatives")
        )
        jaccard[float(threshold)] = tp / max(tp + fp + fn, 1)
    model.threshold = max(jaccard, key=jaccard.get)
    return jaccard
