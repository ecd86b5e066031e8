"""Rendering bubbles: PSF width, peak and two-way carrier as specified."""

import numpy as np
import pytest

from blockrecon.ulm.render import render_bubbles


def _fwhm(profile: np.ndarray, spacing: float) -> float:
    """Width at half maximum of a single-peaked profile, by linear interpolation."""
    half = profile.max() / 2
    above = np.flatnonzero(profile >= half)
    lo, hi = above[0], above[-1]
    left = lo - (profile[lo] - half) / (profile[lo] - profile[lo - 1])
    right = hi + (profile[hi] - half) / (profile[hi] - profile[hi + 1])
    return (right - left) * spacing


@pytest.mark.parametrize("ndim", [2, 3])
def test_psf_fwhm_peak_and_carrier_as_specified(ndim):
    spacing, size = 0.05, 61
    centre = np.full(ndim, (size // 2) * spacing + 0.013)
    fwhm = (0.7,) + (1.3,) * (ndim - 1)
    iq = render_bubbles(
        (size,) * ndim,
        1,
        np.array([0]),
        centre[None],
        np.array([2.0]),
        np.full(ndim, spacing),
        fwhm,
        progress=False,
    )[0]
    peak = np.unravel_index(np.argmax(np.abs(iq)), iq.shape)
    for axis in range(ndim):
        line = tuple(slice(None) if d == axis else peak[d] for d in range(ndim))
        assert _fwhm(np.abs(iq[line]), spacing) == pytest.approx(fwhm[axis], rel=0.02)
    assert np.abs(iq).max() == pytest.approx(2.0, rel=0.02)
    # Two-way carrier along depth: phase advances 4 pi spacing / lambda per voxel.
    depth = tuple(slice(None) if d == 0 else peak[d] for d in range(ndim))
    line = iq[depth][np.abs(iq[depth]) > 0.01 * np.abs(iq).max()]
    step = np.angle(line[1:] * np.conj(line[:-1]))
    assert len(step) > 10 and np.allclose(step, 4 * np.pi * spacing, atol=1e-4)
