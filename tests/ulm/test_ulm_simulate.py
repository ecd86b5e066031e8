"""In-silico ULM acquisitions: reproducibility, concentration, SNR, clutter, bad arguments (their
vessels, flow, PSF and point tables: test_vessels.py, test_flow.py, test_render.py,
test_ulm_acquisition.py; their files: tests/io/test_ulm_files.py)."""

import numpy as np
import pytest
import torch

from blockrecon.ulm import simulate_acquisition


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
    counts = [
        np.bincount(
            simulate_acquisition(
                shape, n_frames, target, seed=s, snr_db=None, progress=False
            ).frames.numpy(),
            minlength=n_frames,
        ).mean()
        for s in range(8)
    ]
    # Each seed fluctuates by ~20% (few long-lived bubbles); the mean over 8 seeds by ~7%.
    assert np.mean(counts) == pytest.approx(target, rel=0.15)


def test_noise_power_matches_snr():
    snr_db = 20.0
    acq = simulate_acquisition((32, 32), 50, 0.0, seed=5, snr_db=snr_db, progress=False)
    assert len(acq.frames) == 0
    noise_power = float((acq.iq.abs() ** 2).mean())
    assert 10 * np.log10(1.0 / noise_power) == pytest.approx(snr_db, abs=0.1)
    # Circular noise: real and imaginary parts carry equal power.
    assert float(acq.iq.real.var() / acq.iq.imag.var()) == pytest.approx(1.0, abs=0.05)


def test_clutter_power_as_requested():
    acq = simulate_acquisition(
        (32, 32), 64, 0.0, seed=6, snr_db=None, clutter_db=20.0, progress=False
    )
    assert 10 * np.log10(float((acq.iq.abs() ** 2).mean())) == pytest.approx(20.0, abs=1.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shape=(8,), n_frames=4, concentration=1.0), "shape"),
        (dict(shape=(8, 8, 8, 8), n_frames=4, concentration=1.0), "shape"),
        (dict(shape=(8, 8), n_frames=0, concentration=1.0), "n_frames"),
        (dict(shape=(8, 8), n_frames=10.5, concentration=1.0), "n_frames"),
        (dict(shape=(8, 8), n_frames=4, concentration=1.0, n_trees=2.0), "n_trees"),
        (dict(shape=(8, 8), n_frames=4, concentration=-1.0), "concentration"),
        (dict(shape=(8, 8), n_frames=4, concentration=float("nan")), "concentration"),
        (
            dict(shape=(8, 8), n_frames=4, concentration=1.0, pixel_size=(0.5, 0.5, 0.5)),
            "pixel_size",
        ),
        (dict(shape=(8, 8), n_frames=4, concentration=1.0, frame_rate=0.0), "frame_rate"),
        (dict(shape=(8, 8), n_frames=4, concentration=1.0, snr_db=float("inf")), "snr_db"),
        (dict(shape=(8, 8), n_frames=4, concentration=1.0, clutter_db=float("nan")), "clutter_db"),
    ],
)
def test_bad_simulation_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_acquisition(progress=False, **kwargs)
