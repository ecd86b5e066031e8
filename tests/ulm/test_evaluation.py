"""Evaluation: the calibrated decoding threshold and gated smoothing are the best of their
candidates and are saved; the smoothing applies only to blocks of few detections."""

from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from ulm_cases import CONFIG

from blockrecon.ulm.decode import GatedSmoothing
from blockrecon.ulm.evaluation import (
    NETWORK_SCALE,
    _block_counts,
    _gated_decode,
    calibrate_smoothing,
    calibrate_threshold,
    decode_blocks,
    evaluate_model,
)
from blockrecon.ulm.training import build_model, load_model, save_model, train_ulm


@pytest.fixture
def trained(blocks):
    """A dense model after 10 training steps on ``blocks``."""
    torch.manual_seed(0)
    model = build_model("dense", CONFIG)
    train_ulm(model, blocks, steps=10, lr=2e-2, batch_size=2, progress=False)
    return model


def _check_calibration(model, acquisition, jaccard: dict, attribute: str, tmp_path) -> None:
    """Each figure of ``jaccard`` is the evaluation of ``model`` with ``attribute`` set to its
    key; the model keeps the best, and its file saves it."""
    chosen = getattr(model, attribute)
    for value, figure in jaccard.items():
        setattr(model, attribute, value)
        scores, _ = evaluate_model(model, acquisition, 16, progress=False)
        assert scores.jaccard == pytest.approx(figure)
    setattr(model, attribute, chosen)
    assert jaccard[chosen] == max(jaccard.values())
    assert getattr(load_model(save_model(tmp_path / "m.pt", model)).model, attribute) == chosen


def test_calibrated_threshold_is_the_best_of_the_grid_and_is_saved(trained, acquisition, tmp_path):
    jaccard = calibrate_threshold(
        trained, [acquisition], 16, thresholds=(0.1, 0.5, 0.9), progress=False
    )
    _check_calibration(trained, acquisition, jaccard, "threshold", tmp_path)
    with pytest.raises(ValueError, match="thresholds"):
        calibrate_threshold(trained, [acquisition], 16, thresholds=(1.5,), progress=False)


def test_calibrated_smoothing_is_the_best_candidate_and_is_saved(trained, acquisition, tmp_path):
    calibrate_threshold(trained, [acquisition], 16, progress=False)
    never = GatedSmoothing(0.1, 0.002, 1e-9)  # no block has fewer detections: plain decoding
    candidates = [
        GatedSmoothing(0.1, 0.002, 1.0),
        GatedSmoothing(0.05, 0.01, 1.0),
        GatedSmoothing(0.05, 0.01, 1.0, merge=0.5),
        GatedSmoothing(0.05, 0.01, 1.0, merge=0.5, merge_below=0.01),
        never,
    ]
    jaccard = calibrate_smoothing(trained, [acquisition], 16, candidates, progress=False)
    assert list(jaccard) == [None, *candidates]
    assert jaccard[never] == pytest.approx(jaccard[None])
    _check_calibration(trained, acquisition, jaccard, "smoothing", tmp_path)
    assert trained.smoothing is not never  # a tie keeps None
    with pytest.raises(ValueError, match="candidate"):
        calibrate_smoothing(trained, [acquisition], 16, [], progress=False)


def _fragment_maps(blocks, gap: int) -> list[torch.Tensor]:
    """8x logits of blocks 0 and 1 that hold in every frame one pair of fragments ``gap`` fine
    cells apart in block 0 and eight such pairs in block 1 (plainly decoded: 2 and 16
    detections per frame, 2 / 64 and 0.25 per input voxel)."""
    frames = blocks.inputs.shape[2]
    fine = [NETWORK_SCALE * n for n in blocks.inputs.shape[3:]]
    maps = [torch.full((1, frames, *fine), -50.0) for _ in range(2)]
    maps[0][:, :, 10, 10] = maps[0][:, :, 10, 10 + gap] = 2.0
    for row in range(4):
        for col in range(2):
            y, x = 8 + 14 * row, 8 + 30 * col
            maps[1][:, :, y, x] = maps[1][:, :, y, x + gap] = 2.0
    return maps


def _fragment_pairs(blocks, gap: int) -> Callable[[GatedSmoothing | None], tuple[int, int]]:
    """Detections per frame of blocks 0 and 1 of :func:`_fragment_maps`, decoded at 0.5 with
    a given smoothing."""
    maps, frames = _fragment_maps(blocks, gap), blocks.inputs.shape[2]
    first = int(blocks.first_frames[1])

    def per_block(smoothing: GatedSmoothing | None) -> tuple[int, int]:
        _, found = decode_blocks(maps, blocks, 0.5, None, smoothing)
        return int((found < first).sum()) // frames, int((found >= first).sum()) // frames

    return per_block


def test_gated_smoothing_joins_fragments_only_in_blocks_of_few_detections(blocks):
    """Fragments 3 fine cells apart (:func:`_fragment_pairs`): with a gate at 0.1 only block 0
    is smoothed, its pair joined into one bubble."""
    per_block = _fragment_pairs(blocks, 3)
    sigma = 1.5 * blocks.pixel_size[0] / NETWORK_SCALE
    assert per_block(None) == (2, 16)
    assert per_block(GatedSmoothing(sigma, 0.01, 0.1)) == (1, 16)
    with pytest.raises(ValueError, match="density"):
        GatedSmoothing(sigma, 0.01, 0.0)
    with pytest.raises(ValueError, match="merge radius"):
        GatedSmoothing(sigma, 0.01, 0.1, merge=-0.1)


def test_merging_has_a_gate_of_its_own(blocks):
    """Fragments 6 fine cells apart (:func:`_fragment_pairs`), which smoothing this narrow does
    not join. Both blocks are smoothed (gate 1.0): a merge radius of 8 cells joins each pair in
    both, unless merging is gated at 0.1, where only block 0's pair is joined."""
    per_block = _fragment_pairs(blocks, 6)
    cell = blocks.pixel_size[0] / NETWORK_SCALE
    assert per_block(GatedSmoothing(0.3 * cell, 0.01, 1.0)) == (2, 16)
    assert per_block(GatedSmoothing(0.3 * cell, 0.01, 1.0, merge=8 * cell)) == (1, 8)
    assert per_block(GatedSmoothing(0.3 * cell, 0.01, 1.0, 8 * cell, merge_below=0.1)) == (1, 16)
    assert per_block(GatedSmoothing(0.3 * cell, 0.01, 0.1, 8 * cell, merge_below=0.1)) == (1, 16)
    with pytest.raises(ValueError, match="merge density limit"):
        GatedSmoothing(0.3 * cell, 0.01, 0.1, 8 * cell, merge_below=0.0)
    with pytest.raises(ValueError, match="only smoothed blocks are merged"):
        GatedSmoothing(0.3 * cell, 0.01, 0.1, 8 * cell, merge_below=0.2)


def test_calibration_counts_each_candidate_as_it_decodes(blocks, acquisition):
    """The calibration scores all candidates of a block from shared decodings; each must get
    the detections of decoding with it alone, whose gates differ (fragments 6 fine cells
    apart, :func:`_fragment_maps`): merged in both blocks, in block 0 only, in neither."""
    maps, frames = _fragment_maps(blocks, 6), blocks.inputs.shape[2]
    cell = blocks.pixel_size[0] / NETWORK_SCALE
    candidates = [
        GatedSmoothing(0.3 * cell, 0.01, 1.0, 8 * cell, merge_below=1e-6),
        GatedSmoothing(0.3 * cell, 0.01, 1.0, 8 * cell),
        GatedSmoothing(0.3 * cell, 0.01, 1.0, 8 * cell, merge_below=0.1),
    ]
    model = SimpleNamespace(threshold=0.5, split_radius=None)
    expected = {0: [2, 1, 1], 1: [16, 8, 16]}
    for index, logits in enumerate(maps):
        counts = _block_counts(model, acquisition, blocks, index, logits, candidates)
        for candidate, per_frame in zip(candidates, expected[index], strict=True):
            alone = _gated_decode(logits, blocks, index, 0.5, None, candidate)
            assert len(alone.frames) == per_frame * frames
            true_positives, false_positives, _ = counts[candidate]
            assert true_positives + false_positives == len(alone.frames)
