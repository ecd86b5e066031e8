"""Detection and sub-pixel localization on rendered bubbles (SVD filter: test_clutter.py)."""

import math

import numpy as np
import pytest
import torch

from blockrecon.ulm import detect_peaks, localize, noise_level, svd_clutter_filter
from blockrecon.ulm.localize import noise_median
from blockrecon.ulm.render import render_bubbles

FWHM = (0.65, 1.25)


def _single_bubbles(ndim, n, rng, pixel=0.5):
    """n frames, each with one noise-free bubble anywhere within the central voxel."""
    centre = 4
    truth = (centre + rng.uniform(-0.5, 0.5, (n, ndim))) * pixel
    fwhm = (FWHM[0],) + (FWHM[1],) * (ndim - 1)
    iq = render_bubbles(
        (2 * centre + 1,) * ndim,
        n,
        np.arange(n),
        truth,
        np.ones(n),
        np.full(ndim, pixel),
        fwhm,
        progress=False,
    )
    return torch.from_numpy(iq), truth


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("method", ["weighted_centroid", "radial_symmetry"])
def test_sub_pixel_error_of_a_noise_free_bubble_below_a_tenth_of_lambda(ndim, method):
    iq, truth = _single_bubbles(ndim, 60, np.random.default_rng(ndim))
    positions, frames = localize(iq, 0.5, method=method, threshold=0.1, psf_fwhm=FWHM)
    assert torch.equal(frames, torch.arange(60))
    error = np.linalg.norm(positions.numpy() - truth, axis=1)
    assert error.max() < 0.1
    # Sub-pixel: far better than snapping to the nearest voxel.
    snapped = np.linalg.norm(np.rint(truth / 0.5) * 0.5 - truth, axis=1)
    assert error.mean() < 0.5 * snapped.mean()


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("method", ["weighted_centroid", "radial_symmetry"])
def test_bubble_on_the_border_is_found_at_the_border_voxel_centre(ndim, method):
    # One noise-free bubble per frame within half a voxel of voxel 0 along axis 0 and within
    # the central voxel along the others: the mirrored neighbourhood puts it at voxel 0's
    # centre along axis 0 (error = its distance from there) and sub-pixel along the others
    # (within lambda/8, half the true-positive radius: the mirror distorts the PSF's shape).
    n, pixel, rng = 40, 0.5, np.random.default_rng(10 + ndim)
    truth = (4 + rng.uniform(-0.5, 0.5, (n, ndim))) * pixel
    truth[:, 0] -= 4 * pixel
    fwhm = (FWHM[0],) + (FWHM[1],) * (ndim - 1)
    iq = render_bubbles(
        (9,) * ndim, n, np.arange(n), truth, np.ones(n), np.full(ndim, pixel), fwhm, progress=False
    )
    positions, frames = localize(
        torch.from_numpy(iq), pixel, method=method, threshold=0.1, psf_fwhm=FWHM
    )
    assert torch.equal(frames, torch.arange(n))
    error = np.abs(positions.numpy() - truth)
    np.testing.assert_allclose(error[:, 0], np.abs(truth[:, 0]), atol=1e-6)
    assert error[:, 1:].max() < 0.125
    snapped = np.abs(np.rint(truth[:, 1:] / pixel) * pixel - truth[:, 1:])
    assert error[:, 1:].mean() < 0.5 * snapped.mean()


@pytest.mark.parametrize("method", ["weighted_centroid", "radial_symmetry"])
def test_no_peak_above_threshold_gives_empty_tables(method):
    positions, frames = localize(
        torch.ones(3, 6, 6, 6, dtype=torch.complex64), 0.5, method=method, threshold=2.0
    )
    assert positions.shape == (0, 3) and frames.shape == (0,)


def test_a_plateau_of_equal_maxima_is_one_detection_between_its_voxels():
    amplitude = np.zeros((2, 9, 9), np.float32)
    amplitude[0, 4, 3:5] = 10.0  # two touching equal maxima
    amplitude[0, 4, 2] = amplitude[0, 4, 5] = 5.0
    amplitude[1, 2, 2] = amplitude[1, 6, 6] = 10.0  # two separate ones
    positions, frames = localize(
        torch.from_numpy(amplitude.astype(np.complex64)), 0.5, threshold=1.0
    )
    assert frames.tolist() == [0, 1, 1]
    assert positions[0, 0] == 2.0 and 1.5 < positions[0, 1] < 2.0  # between voxels 3 and 4


def test_an_axis_of_one_voxel_is_refused():
    with pytest.raises(ValueError, match="at least 2 voxels"):
        localize(torch.ones(2, 1, 8, dtype=torch.complex64), 0.5)


def test_detection_finds_separated_bubbles_and_ignores_noise():
    rng = np.random.default_rng(0)
    truth = np.array([[3.0, 3.0], [3.0, 9.0], [9.0, 6.0]])
    iq = render_bubbles(
        (26, 26), 1, np.zeros(3, np.int64), truth, np.ones(3), np.full(2, 0.5), FWHM, progress=False
    )
    iq += 0.02 * (rng.standard_normal(iq.shape) + 1j * rng.standard_normal(iq.shape))
    iq = torch.from_numpy(iq.astype(np.complex64))
    assert noise_level(iq) == pytest.approx(0.02 * np.sqrt(2), rel=0.2)
    frames, voxels = detect_peaks(iq, 5 * noise_level(iq))
    assert sorted(map(tuple, voxels.numpy() * 0.5)) == sorted(map(tuple, truth))


@pytest.mark.parametrize(
    "iq, message",
    [
        (torch.zeros(4, 8, 8), "complex"),
        (torch.zeros(8, 8, dtype=torch.complex64), "shape"),
        (torch.full((2, 4, 4), complex(float("nan"), 0)), "non-finite"),
        (np.zeros((2, 4, 4), np.complex64), "torch.Tensor"),
    ],
)
def test_bad_iq_is_named(iq, message):
    with pytest.raises(ValueError, match=message):
        localize(iq, 0.5)


def test_bad_arguments_are_named():
    iq = torch.zeros(2, 8, 8, dtype=torch.complex64)
    with pytest.raises(ValueError, match="method"):
        localize(iq, 0.5, method="gaussian")
    with pytest.raises(ValueError, match="pixel_size"):
        localize(iq, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="n_components"):
        svd_clutter_filter(iq, 2)
    with pytest.raises(ValueError, match="n_components"):
        svd_clutter_filter(iq, 1.0)
    with pytest.raises(ValueError, match="psf_fwhm"):
        localize(iq, 0.5, method="radial_symmetry", psf_fwhm=(1.0,))
    assert torch.equal(svd_clutter_filter(iq, np.int64(1)), svd_clutter_filter(iq, 1))


@pytest.mark.parametrize("bubble_fraction", [0.0, 0.02])
def test_noise_median_is_the_rayleigh_median_under_bright_voxels(bubble_fraction):
    generator = torch.Generator().manual_seed(0)
    parts = torch.randn(2, 200_000, generator=generator)
    noise = 0.3 * torch.complex(parts[0], parts[1]).abs()
    noise[: int(bubble_fraction * noise.numel())] += 10.0  # bright voxels
    truth = 0.3 * math.sqrt(2 * math.log(2))  # median of |n|, n complex Gaussian
    assert float(noise_median(noise)) == pytest.approx(truth, rel=0.03)
