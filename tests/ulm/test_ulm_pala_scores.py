"""PALA's scores on hand-built cases with known answers: localization rates and errors,
saturation, the gap of a canal pair, the global score's formula; invariance to the order of the
detections; clear errors for mismatched inputs."""

import math

import numpy as np
import pytest
import torch

from blockrecon.ulm import localization_scores
from blockrecon.ulm.canals import CanalPair, canal_pair_gap, canal_profiles, simulate_canal_pair
from blockrecon.ulm.evaluation import score_detections
from blockrecon.ulm.maps import track_maps
from blockrecon.ulm.pala_scores import (
    PALA_WEIGHTS,
    canal_gap,
    component_scores,
    global_score,
    pala_scores,
    resolved_sections,
    saturation,
)

TRUTH = torch.tensor([[1.0, 1.0], [2.0, 3.0], [4.0, 1.0], [3.0, 3.0]])
FRAMES = torch.tensor([0, 0, 1, 1])
EMPTY_MAP = torch.zeros(4, 4)


def test_perfect_detections_score_one_and_zero_error():
    scores = pala_scores(localization_scores(TRUTH, FRAMES, TRUTH, FRAMES), EMPTY_MAP)
    assert (scores.jaccard, scores.precision, scores.recall) == (1.0, 1.0, 1.0)
    assert (scores.rmse, scores.mean_error) == (0.0, 0.0)
    assert scores.components["rmse"] == 1.0


def test_half_the_bubbles_missed_halves_recall_not_precision():
    found = localization_scores(TRUTH, FRAMES, TRUTH[::2], FRAMES[::2])
    assert (found.recall, found.precision, found.jaccard) == (0.5, 1.0, 0.5)


def test_a_known_offset_is_the_error():
    offset = torch.tensor([0.03, 0.04])  # 0.05 lambda
    scores = localization_scores(TRUTH, FRAMES, TRUTH + offset, FRAMES)
    assert scores.rmse == pytest.approx(0.05, rel=1e-5)
    assert scores.mean_error == pytest.approx(0.05, rel=1e-5)
    assert scores.jaccard == 1.0  # within lambda/4


def test_mean_error_is_palas_rmse_and_rmse_the_root_mean_square():
    shifted = TRUTH[:2] + torch.tensor([[0.1, 0.0], [0.0, 0.2]])
    scores = localization_scores(TRUTH[:2], FRAMES[:2], shifted, FRAMES[:2])
    assert scores.mean_error == pytest.approx(0.15, rel=1e-5)
    assert scores.rmse == pytest.approx(math.sqrt((0.1**2 + 0.2**2) / 2), rel=1e-5)


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5)])
def test_saturation_counts_the_filled_pixels(shape):
    assert saturation(torch.ones(shape)) == 1.0
    assert saturation(torch.zeros(shape)) == 0.0
    density = torch.zeros(shape)
    density.view(-1)[[0, 7, 11]] = torch.tensor([1.0, 3.0, 0.5])
    assert saturation(density) == pytest.approx(3 / density.numel())


def test_saturation_refuses_bad_maps():
    with pytest.raises(ValueError, match="2 or 3 axes"):
        saturation(torch.ones(4))
    with pytest.raises(ValueError, match="finite"):
        saturation(torch.full((2, 2), float("nan")))


# gap -------------------------------------------------------------------------------------------

PROFILES = np.array(
    [
        [0, 2, 3, 2, 0],  # one blob: merged
        [1, 2, 0, 2, 1],  # resolved
        [2, 2, 1, 2, 0],  # merged (1 is above the threshold 0.5)
        [2, 0, 0, 2, 0],  # resolved
        [0, 2, 0, 0, 2],  # resolved
    ],
    dtype=float,
)
SEPARATIONS = np.array([0.1, 0.2, 0.3, 0.4, 0.5])


def test_resolved_sections_need_an_empty_sample_between_the_canals():
    assert resolved_sections(PROFILES, 0.5).tolist() == [False, True, False, True, True]
    # Only samples between the first and the last above the threshold count.
    assert resolved_sections(np.array([[0.0, 0.0, 3.0, 0.0]]), 0.5).tolist() == [False]


def test_gap_is_the_separation_after_the_last_merged_section():
    assert canal_gap(PROFILES, SEPARATIONS, 0.5) == pytest.approx(0.4)
    order = [3, 0, 4, 2, 1]  # sections in any order
    assert canal_gap(PROFILES[order], SEPARATIONS[order], 0.5) == pytest.approx(0.4)
    assert canal_gap(PROFILES[[1, 3, 4]], SEPARATIONS[[1, 3, 4]], 0.5) == pytest.approx(0.2)
    assert canal_gap(PROFILES[:3], SEPARATIONS[:3], 0.5) == math.inf  # widest still merged
    assert canal_gap(PROFILES, SEPARATIONS, 1.5) == pytest.approx(0.2)  # the 1 falls below


def test_gap_refuses_mismatched_tables():
    with pytest.raises(ValueError, match="one per profile"):
        canal_gap(PROFILES, SEPARATIONS[:3], 0.5)
    with pytest.raises(ValueError, match="threshold"):
        canal_gap(PROFILES, SEPARATIONS, 0.0)
    with pytest.raises(ValueError, match="n_sections, n_samples"):
        canal_gap(PROFILES[0], SEPARATIONS[:1], 0.5)


def _painted_pair(pair: CanalPair, shape, pixel: float, upsampling: int, resolved_from: float):
    """A fine density map with both canals' centrelines painted, merged (the rows between them
    filled too) where the wall-to-wall separation is below ``resolved_from``."""
    fine = pixel / upsampling
    centres = [((np.arange(n * upsampling) + 0.5) * fine - 0.5 * pixel) for n in shape]
    density = np.zeros([n * upsampling for n in shape])
    for column, x in enumerate(centres[-1]):
        upper, lower = pair.centre_depths(np.array([x]))[0]
        rows = np.flatnonzero(
            (centres[0] >= upper - 0.5 * fine) & (centres[0] < lower + 0.5 * fine)
        )
        if pair.separation(x) < resolved_from:
            density[rows, ..., column] = 1.0
        else:
            density[rows[[0, -1]], ..., column] = 1.0
    return torch.from_numpy(density)


@pytest.mark.parametrize("shape", [(8, 16), (8, 3, 16)])
def test_gap_of_a_painted_canal_pair(shape):
    pixel, upsampling = 0.5, 4
    low, high = -0.25, (np.array(shape) - 0.5) * pixel
    pair = CanalPair(
        depth=0.5 * (low + high[0]),
        elevation=None if len(shape) == 2 else 0.5 * (low + high[1]),
        start=low,
        stop=float(high[-1]),
        min_separation=0.0,
        max_separation=2.0,
        radius=0.1,
    )
    density = _painted_pair(pair, shape, pixel, upsampling, resolved_from=0.8)
    profiles, separations = canal_profiles(density, pixel, upsampling, pair)
    assert separations.min() >= pair.separation(pair.start + 1.0) - 1e-9
    assert separations.max() <= pair.separation(pair.stop - 1.0) + 1e-9
    gap = canal_pair_gap(density, density, pixel, upsampling, pair)
    step = np.diff(separations).max()  # one fine column
    assert 0.8 <= gap <= 0.8 + step


def test_canal_profiles_refuse_a_map_of_another_dimensionality():
    acq = simulate_canal_pair((8, 16), 16, 2.0, progress=False)
    pair = CanalPair.from_metadata(acq.metadata)
    with pytest.raises(ValueError, match="2D tensor like the canal pair"):
        canal_profiles(torch.zeros(8, 8, 8), 0.5, 1, pair)
    with pytest.raises(ValueError, match="share the grid"):
        canal_pair_gap(torch.zeros(8, 16), torch.zeros(16, 32), 0.5, 1, pair)


def test_simulated_canals_hold_their_bubbles():
    acq = simulate_canal_pair((12, 24), 64, 8.0, radius=0.15, speed=0.3, progress=False)
    pair = CanalPair.from_metadata(acq.metadata)
    pos = acq.positions.double().numpy()
    centres = pair.centre_depths(pos[:, -1])
    nearest = np.abs(pos[:, :1] - centres).min(axis=1)
    assert len(pos) > 200 and nearest.max() <= pair.radius + 1e-5
    for track in np.unique(acq.track_ids.numpy())[:5]:
        mine = acq.track_ids.numpy() == track
        steps = np.diff(pos[mine, -1]) / np.diff(acq.frames.numpy()[mine])
        np.testing.assert_allclose(steps, 0.3, rtol=1e-4)


# global score ----------------------------------------------------------------------------------


def test_global_score_formula_by_hand():
    values = {"rmse": 0.1, "jaccard": 0.5, "precision": 0.9, "gap": 0.4, "saturation": 0.3}
    scores = component_scores(values)
    assert scores == pytest.approx(
        {"rmse": 0.8, "jaccard": 0.5, "precision": 0.9, "gap": 0.6, "saturation": 0.3}
    )
    # (2 * 0.8 + 2 * 0.5 + 0.9 + 0.6 + 0.3) / 7 weights
    assert global_score(scores) == pytest.approx(100 * 4.4 / 7)
    # Without a gap the weights are renormalized over the rest: (1.6 + 1.0 + 0.9 + 0.3) / 6.
    assert global_score(component_scores({**values, "gap": None})) == pytest.approx(100 * 3.8 / 6)
    assert sum(PALA_WEIGHTS.values()) == 7.0


def test_component_scores_are_clipped_and_unknown_names_refused():
    scores = component_scores({"gap": math.inf, "rmse": float("nan"), "saturation": 0.2})
    assert scores == {"gap": 0.0, "saturation": 0.2}
    assert math.isnan(global_score({}))
    with pytest.raises(ValueError, match="unknown metrics"):
        component_scores({"recall": 0.5})


# on a simulated canal pair ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def canals():
    return simulate_canal_pair((8, 24), 96, 6.0, seed=2, progress=False)


def test_true_positions_score_perfectly_and_their_gap_is_the_truth_maps(canals):
    localization, scores = score_detections(canals, canals.positions, canals.frames)
    assert (scores.jaccard, scores.rmse) == (1.0, 0.0)
    tracks = track_maps(
        canals.positions, canals.frames, canals.track_ids, (8, 24), 0.5, canals.frame_rate
    )
    truth_gap = canal_pair_gap(
        tracks.density, tracks.density, 0.5, 8, CanalPair.from_metadata(canals.metadata)
    )
    assert math.isfinite(scores.gap) and scores.gap <= truth_gap + 0.25  # tracking drops few
    assert 0 < scores.saturation < 1
    assert set(scores.components) == set(PALA_WEIGHTS)
    assert scores.global_score == pytest.approx(global_score(scores.components))
    assert localization.n_pairs == len(canals.frames)


def test_scores_do_not_depend_on_the_order_of_the_detections(canals):
    generator = torch.Generator().manual_seed(0)
    noisy = canals.positions + 0.05 * torch.randn(canals.positions.shape, generator=generator)
    order = torch.randperm(len(noisy), generator=generator)
    first = score_detections(canals, noisy, canals.frames)
    second = score_detections(canals, noisy[order], canals.frames[order])
    assert first == second


def test_detections_of_another_dimensionality_are_refused(canals):
    with pytest.raises(ValueError, match=r"detected_positions must have shape \(n, 2\)"):
        score_detections(canals, torch.zeros(3, 3), torch.zeros(3, dtype=torch.int64))
