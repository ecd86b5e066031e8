import math
import warnings

import pytest
import torch

from blockrecon.physics.maps import (
    MAX_CALIB_WIDTH,
    MIN_CALIB_WIDTH,
    CoilMapWarning,
    calibration_kspace,
    centred_fft,
    default_calib_width,
    estimate_maps,
    explained_energy,
    nyquist_radius,
)
from blockrecon.physics.simulate import simulate_acquisition
from blockrecon.physics.trajectory import radial_3d, radial_spokes
from blockrecon.recon import cg_sense, psnr

N = 16
SHAPE = (N, N, N)
#: Relative error of the calibration against the Cartesian centre (measured 0.16; gridding with
#: Pipe-Menon weights gave 0.35)
ERROR_BOUND = 0.2


@pytest.fixture(scope="module")
def acquisition():
    return simulate_acquisition(radial_3d(300, N), SHAPE, n_coils=4, snr_db=30, seed=2)


def _voxelwise_correlation(estimate, truth):
    """|<S_est(r), S_true(r)>| / (|S_est(r)| |S_true(r)|): 1 when equal up to a phase per voxel."""
    inner = (estimate * truth.conj()).sum(0).abs()
    norms = estimate.abs().pow(2).sum(0).sqrt() * truth.abs().pow(2).sum(0).sqrt()
    return inner / norms.clamp_min(1e-12)


def test_calibration_approximates_cartesian_kspace_centre(acquisition):
    calibration = calibration_kspace(acquisition.kspace, acquisition.coord, SHAPE, 8)
    assert calibration.shape == (4, *SHAPE) and calibration.dtype == torch.complex64
    centre = (slice(None), *[slice(4, 12)] * 3)
    outside = calibration.clone()
    outside[centre] = 0
    assert not outside.any()  # zero outside the cube
    cartesian = centred_fft(acquisition.maps * acquisition.image, 3)[centre]
    assert (calibration[centre] - cartesian).norm() / cartesian.norm() < ERROR_BOUND


def test_nyquist_radius_of_radial_follows_spoke_count():
    for spokes in (100, 400, 1600):
        radius = nyquist_radius(radial_3d(spokes, 64), (64, 64, 64))
        assert abs(radius - math.sqrt(spokes / (2 * math.pi))) <= 1
    oversampled_readout = radial_3d(400, 128, image_size=64)  # the angular gaps decide
    assert abs(nyquist_radius(oversampled_readout, (64,) * 3) - 8) <= 1
    assert nyquist_radius(radial_3d(20_000, 32), (32, 32, 32)) >= 15  # Nyquist nearly everywhere
    assert default_calib_width(radial_3d(20_000, 32), (32, 32, 32)) == MAX_CALIB_WIDTH
    assert default_calib_width(radial_3d(10, 32), (32, 32, 32)) == MIN_CALIB_WIDTH
    assert default_calib_width(radial_3d(201, 32), (32, 32, 32)) == 10  # radius 6, a cell inside


@pytest.fixture(scope="module")
def espirit_maps(acquisition):
    return estimate_maps(
        acquisition.kspace,
        acquisition.coord,
        SHAPE,
        method="espirit",
        calib_width=10,
        kernel_width=5,
    )


def _assert_maps_match_truth(maps, acquisition):
    assert maps.shape == (4, *SHAPE) and maps.dtype == torch.complex64
    inside = acquisition.image.abs() > 0.1
    correlation = _voxelwise_correlation(maps, acquisition.maps)[inside]
    assert correlation.mean() > 0.95
    assert correlation.quantile(0.05) > 0.9
    rss = maps.abs().pow(2).sum(0)[inside]
    assert ((rss - 1).abs() < 0.05).float().mean() > 0.95  # ESPIRiT may crop a few edge voxels


def test_espirit_maps_correlate_with_true_maps_inside_object(acquisition, espirit_maps):
    _assert_maps_match_truth(espirit_maps, acquisition)


def test_espirit_maps_vanish_outside_the_object(espirit_maps):
    assert espirit_maps[:, :2, :2, :2].abs().max() == 0


@pytest.mark.slow
def test_jsense_maps_correlate_with_true_maps_inside_object(acquisition):
    maps = estimate_maps(
        acquisition.kspace, acquisition.coord, SHAPE, method="jsense", calib_width=10, max_iter=5
    )
    _assert_maps_match_truth(maps, acquisition)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="sense"), "method"),
        (dict(calib_width=2), "calib_width"),
        (dict(calib_width=17), "calib_width"),
        (dict(calib_width=8, kernel_width=8), "kernel_width"),
        (dict(image_shape=(8, 8, 8)), "must lie in"),
    ],
)
def test_bad_arguments_raise_value_error(acquisition, kwargs, message):
    kwargs = {"image_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=message):
        estimate_maps(acquisition.kspace, acquisition.coord, **kwargs)


def test_kspace_shape_mismatch_raises_value_error(acquisition):
    with pytest.raises(ValueError, match="kspace must have shape"):
        estimate_maps(acquisition.kspace[:, :10], acquisition.coord, SHAPE)
    with pytest.raises(ValueError, match="kspace must have shape"):
        estimate_maps(acquisition.kspace[0], acquisition.coord, SHAPE)


def test_calibration_region_without_samples_raises_value_error():
    coord = radial_3d(20, N)
    outer = coord[:, :3]  # only the edge of k-space
    kspace = torch.ones(2, *outer.shape[:-1], dtype=torch.complex64)
    with pytest.raises(ValueError, match="calibration region"):
        estimate_maps(kspace, outer, SHAPE, calib_width=8)


def _radial_acquisition(size):
    """The README's sampling: 8-coil golden-angle radial, 8x angularly undersampled."""
    coord = radial_3d(radial_spokes(size, 8.0), size)
    return simulate_acquisition(coord, (size,) * 3, n_coils=8, snr_db=40)


def _cg_psnr(acquisition, maps):
    image = cg_sense(
        acquisition.kspace, acquisition.coord, maps, n_iter=20, backend="finufft", progress=False
    )
    return psnr(image, acquisition.image)


@pytest.mark.parametrize("size", [24, 32, pytest.param(48, marks=pytest.mark.slow)])
def test_default_espirit_maps_reconstruct_like_true_maps(size):
    acquisition = _radial_acquisition(size)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoilMapWarning)
        maps = estimate_maps(acquisition.kspace, acquisition.coord, acquisition.image_shape)
    assert _cg_psnr(acquisition, maps) > _cg_psnr(acquisition, acquisition.maps) - 1


def test_implausible_maps_warn():
    acquisition = _radial_acquisition(24)
    calibration = calibration_kspace(acquisition.kspace, acquisition.coord, (24,) * 3, 10)
    assert explained_energy(acquisition.maps, calibration) > 0.95
    assert explained_energy(acquisition.maps.roll(1, 0), calibration) < 0.6  # coils swapped
    with pytest.warns(CoilMapWarning, match="calibration width 4"):
        maps = estimate_maps(acquisition.kspace, acquisition.coord, (24,) * 3, calib_width=4)
    assert _cg_psnr(acquisition, maps) < _cg_psnr(acquisition, acquisition.maps) - 10


def test_estimated_maps_carry_the_object_phase():
    """Reconstructed with estimated maps, the image is close to real and non-negative: the
    object's smooth phase (here the true maps' own phase convention) moves into the maps."""
    acquisition = _radial_acquisition(24)
    image = cg_sense(
        acquisition.kspace,
        acquisition.coord,
        estimate_maps(acquisition.kspace, acquisition.coord, acquisition.image_shape),
        n_iter=20,
        backend="finufft",
        progress=False,
    )
    reference = cg_sense(
        acquisition.kspace,
        acquisition.coord,
        acquisition.maps,
        n_iter=20,
        backend="finufft",
        progress=False,
    )
    assert float(reference.imag.norm() / reference.norm()) > 0.2  # the truth's phase
    assert float(image.imag.norm() / image.norm()) < 0.1
    assert float(image.real.clamp(max=0).norm() / image.norm()) < 0.1


def test_every_backend_estimates_maps_that_reconstruct_alike():
    """The calibration runs on the named NUFFT backend. Its 100 CG iterations amplify the
    backends' 1e-5 differences into a few percent of the maps (and a few voxels of their
    support), so the property asserted is the reconstruction they give."""
    acquisition = _radial_acquisition(16)
    quality = {
        backend: _cg_psnr(
            acquisition,
            estimate_maps(
                acquisition.kspace, acquisition.coord, acquisition.image_shape, backend=backend
            ),
        )
        for backend in ("finufft", "sigpy")
    }
    assert abs(quality["sigpy"] - quality["finufft"]) < 0.5, quality
    with pytest.raises(ValueError, match="backend"):
        estimate_maps(
            acquisition.kspace, acquisition.coord, acquisition.image_shape, backend="nufft"
        )
