import math

import pytest
import torch

from blockrecon.physics.acquisition import Acquisition, check_acquisition
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.simulate import simulate_acquisition, simulate_radial
from blockrecon.physics.trajectory import radial_3d

N = 16
SHAPE = (N, N, N)


@pytest.fixture(scope="module")
def coord():
    return radial_3d(300, N)


def _relative_difference(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("phantom", ["shepp_logan", "ellipsoids"])
def test_fine_grid_kspace_matches_coarse_model_closely_but_not_exactly(coord, phantom):
    acq = simulate_acquisition(coord, SHAPE, n_coils=4, phantom=phantom, seed=1)
    assert isinstance(acq, Acquisition)
    assert acq.kspace.shape == (4, 300, N) and acq.kspace.dtype == torch.complex64
    assert acq.maps.shape == (4, *SHAPE) and acq.image.shape == SHAPE
    assert acq.noise_std == 0 and acq.snr_db is None
    coarse_model = NUFFT(coord, SHAPE)(acq.maps * acq.image)
    difference = _relative_difference(acq.kspace, coarse_model)
    assert 1e-4 < difference < 0.02  # same object and scale, different discretization
    # Sharp edges put more energy above the coarse grid's Nyquist limit: a larger mismatch.
    sharp = simulate_acquisition(coord, SHAPE, n_coils=4, phantom=phantom, seed=1, edge_width=0)
    sharp_model = NUFFT(coord, SHAPE)(sharp.maps * sharp.image)
    assert _relative_difference(sharp.kspace, sharp_model) > 3 * difference
    # oversample=1 is exactly the reconstruction model (the inverse crime).
    crime = simulate_acquisition(coord, SHAPE, n_coils=4, phantom=phantom, seed=1, oversample=1)
    assert _relative_difference(crime.kspace, coarse_model) < 1e-5


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_measured_snr_matches_request_and_seed_reproduces(coord, snr_db):
    clean = simulate_acquisition(coord, SHAPE, n_coils=4)
    noisy = simulate_acquisition(coord, SHAPE, n_coils=4, snr_db=snr_db, seed=5)
    noise = noisy.kspace - clean.kspace
    signal_rms = clean.kspace.abs().pow(2).mean().sqrt()
    measured = 20 * math.log10(signal_rms / noise.abs().pow(2).mean().sqrt())
    assert abs(measured - snr_db) < 0.1
    assert abs(noise.abs().pow(2).mean().sqrt() - noisy.noise_std) / noisy.noise_std < 0.01
    # circular: real and imaginary parts carry equal power
    assert abs(noise.real.var() / noise.imag.var() - 1) < 0.05
    again = simulate_acquisition(coord, SHAPE, n_coils=4, snr_db=snr_db, seed=5)
    other = simulate_acquisition(coord, SHAPE, n_coils=4, snr_db=snr_db, seed=6)
    assert torch.equal(again.kspace, noisy.kspace)
    assert not torch.equal(other.kspace, noisy.kspace)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(phantom="cube"), "phantom"),
        (dict(snr_db=float("inf")), "snr_db"),
        (dict(oversample=0), "oversample"),
        (dict(image_shape=(N, N)), "last dimension|3D"),
        (dict(image_shape=(8, 8, 8)), r"coord\[\.\.\., 0\] must lie"),
    ],
)
def test_bad_input_raises_value_error(coord, kwargs, message):
    kwargs = {"image_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate_acquisition(coord, n_coils=2, **kwargs)


def test_simulate_radial_covers_an_anisotropic_grid_and_validates():
    shape = (8, 12, 16)
    acq = simulate_radial(shape, n_coils=2, n_spokes=40, snr_db=None)
    assert isinstance(acq, Acquisition) and acq.image_shape == shape
    assert acq.kspace.shape == (2, 40, 32) and acq.noise_std == 0
    check_acquisition(acq)
    extent = acq.coord.abs().amax(dim=(0, 1))
    half = torch.tensor(shape) / 2
    assert torch.all(extent <= half) and torch.all(extent > 0.9 * half)
    with pytest.raises(ValueError, match="3D"):
        simulate_radial((8, 8), n_coils=2)
