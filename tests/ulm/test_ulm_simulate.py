"""In-silico ULM acquisitions: reproducibility, concentration, flow in vessels, PSF, SNR
(their files: tests/io/test_ulm_files.py)."""

import dataclasses

import numpy as np
import pytest
import torch

from blockrecon.ulm import simulate_acquisition
from blockrecon.ulm.render import render_bubbles


def distance_to_wall(points: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                     radii: np.ndarray) -> np.ndarray:
    """Signed distance from each point to the nearest vessel wall, in lambda.

    Negative or zero means inside a vessel. ``points``: ``(n, ndim)``; ``starts``, ``ends``:
    ``(n_segments, ndim)`` segment end points; ``radii``: ``(n_segments,)``. Returns ``(n,)``.
    """
    best = np.full(len(points), np.inf)
    axis = ends - starts
    axis_sq = np.maximum(np.einsum("sd,sd->s", axis, axis), 1e-30)
    for chunk in np.array_split(np.arange(len(points)), max(1, len(points) // 2048)):
        rel = points[chunk, None, :] - starts[None]
        t = np.clip(np.einsum("psd,sd->ps", rel, axis) / axis_sq, 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * axis[None], axis=2)
        best[chunk] = np.min(dist - radii[None], axis=1)
    return best


def _small(seed=0, **kw):
    kw.setdefault("progress", False)
    return simulate_acquisition((24, 24), 64, 10.0, seed=seed, **kw)


def test_same_seed_same_acquisition_other_seed_differs():
    a, b, c = _small(1), _small(1), _small(2)
    assert torch.equal(a.iq, b.iq) and torch.equal(a.positions, b.positions)
    assert torch.equal(a.track_ids, b.track_ids)
    assert not torch.equal(a.iq, c.iq)


@pytest.mark.parametrize("shape", [(32, 32), (12, 12, 12)])
def test_mean_bubbles_per_frame_matches_concentration(shape):
    target, n_frames = 20.0, 300
    counts = [np.bincount(simulate_acquisition(shape, n_frames, target, seed=s, snr_db=None,
                                               progress=False).frames.numpy(),
                          minlength=n_frames).mean() for s in range(8)]
    # Each seed fluctuates by ~20% (few long-lived bubbles); the mean over 8 seeds by ~7%.
    assert np.mean(counts) == pytest.approx(target, rel=0.15)


@pytest.mark.parametrize("shape", [(32, 32), (12, 12, 12)])
def test_bubbles_stay_inside_vessels_and_field_of_view(shape):
    acq = simulate_acquisition(shape, 100, 15.0, seed=3, progress=False)
    vessels = acq.metadata["vessels"]
    pos = acq.positions.numpy().astype(np.float64)
    assert len(pos) > 100
    gap = distance_to_wall(pos, *(np.array(vessels[k]) for k in ("starts", "ends", "radii")))
    assert gap.max() <= 1e-5
    pixel = np.array(acq.pixel_size)
    assert np.all(pos >= -pixel / 2) and np.all(pos < (np.array(shape) - 0.5) * pixel)


def test_bubbles_move_smoothly_along_tracks():
    acq = _small(4)
    ids, frames, pos = (t.numpy() for t in (acq.track_ids, acq.frames, acq.positions))
    order = np.lexsort((frames, ids))
    same = (ids[order][1:] == ids[order][:-1]) & (np.diff(frames[order]) == 1)
    step = np.linalg.norm(np.diff(pos[order], axis=0), axis=1)[same]
    # Poiseuille peak speed in the widest (40 um) vessel: 2 x 0.375/frame x 0.405 lambda; the
    # radial offset turns with the centreline, adding a little at segment joints.
    fastest = 2 * 0.375 * 40e-6 / acq.wavelength
    assert same.sum() > 100 and step.max() < 1.1 * fastest and step.min() > 0


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
    iq = render_bubbles((size,) * ndim, 1, np.array([0]), centre[None], np.array([2.0]),
                        np.full(ndim, spacing), fwhm, progress=False)[0]
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


def test_noise_power_matches_snr():
    snr_db = 20.0
    acq = simulate_acquisition((32, 32), 50, 0.0, seed=5, snr_db=snr_db, progress=False)
    assert len(acq.frames) == 0
    noise_power = float((acq.iq.abs() ** 2).mean())
    assert 10 * np.log10(1.0 / noise_power) == pytest.approx(snr_db, abs=0.1)
    # Circular noise: real and imaginary parts carry equal power.
    assert float(acq.iq.real.var() / acq.iq.imag.var()) == pytest.approx(1.0, abs=0.05)


def test_clutter_power_as_requested():
    acq = simulate_acquisition((32, 32), 64, 0.0, seed=6, snr_db=None, clutter_db=20.0,
                               progress=False)
    assert 10 * np.log10(float((acq.iq.abs() ** 2).mean())) == pytest.approx(20.0, abs=1.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(shape=(8,), n_frames=4, concentration=1.0), "shape"),
    (dict(shape=(8, 8, 8, 8), n_frames=4, concentration=1.0), "shape"),
    (dict(shape=(8, 8), n_frames=0, concentration=1.0), "n_frames"),
    (dict(shape=(8, 8), n_frames=10.5, concentration=1.0), "n_frames"),
    (dict(shape=(8, 8), n_frames=4, concentration=1.0, n_trees=2.0), "n_trees"),
    (dict(shape=(8, 8), n_frames=4, concentration=-1.0), "concentration"),
    (dict(shape=(8, 8), n_frames=4, concentration=float("nan")), "concentration"),
    (dict(shape=(8, 8), n_frames=4, concentration=1.0, pixel_size=(0.5, 0.5, 0.5)),
     "pixel_size"),
    (dict(shape=(8, 8), n_frames=4, concentration=1.0, frame_rate=0.0), "frame_rate"),
])
def test_bad_simulation_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_acquisition(progress=False, **kwargs)


def test_inconsistent_point_tables_are_refused():
    acq = _small(7)
    n = len(acq.frames)
    assert n > 2
    shuffled = acq.frames.flip(0)
    with pytest.raises(ValueError, match="sorted ascending"):
        dataclasses.replace(acq, frames=shuffled)
    beyond = acq.frames.clone()
    beyond[-1] = acq.n_frames
    with pytest.raises(ValueError, match=f"below the {acq.n_frames} frames"):
        dataclasses.replace(acq, frames=beyond)
    with pytest.raises(ValueError, match="pixel_size"):
        dataclasses.replace(acq, pixel_size=(float("nan"),) * len(acq.pixel_size))
