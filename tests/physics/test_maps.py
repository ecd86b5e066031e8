import pytest
import torch

from blockrecon.physics.maps import centred_fft, estimate_maps, grid_calibration
from blockrecon.physics.simulate import simulate_acquisition
from blockrecon.physics.trajectory import radial_3d

N = 16
SHAPE = (N, N, N)


@pytest.fixture(scope="module")
def acquisition():
    return simulate_acquisition(radial_3d(300, N), SHAPE, n_coils=4, snr_db=30, seed=2)


def _voxelwise_correlation(estimate, truth):
    """|<S_est(r), S_true(r)>| / (|S_est(r)| |S_true(r)|): 1 when equal up to a phase per voxel."""
    inner = (estimate * truth.conj()).sum(0).abs()
    norms = estimate.abs().pow(2).sum(0).sqrt() * truth.abs().pow(2).sum(0).sqrt()
    return inner / norms.clamp_min(1e-12)


def test_calibration_gridding_approximates_cartesian_kspace_centre(acquisition):
    calibration = grid_calibration(acquisition.kspace, acquisition.coord, 8)
    assert calibration.shape == (4, 8, 8, 8) and calibration.dtype == torch.complex64
    cartesian = centred_fft(acquisition.maps * acquisition.image, 3)[:, 4:12, 4:12, 4:12]
    # Pipe-Menon gridding is only approximate at the scale of one k-space cell (the object fills
    # the FOV; measured here: correlation 0.94, error 0.35), enough for ESPIRiT (next test).
    correlation = torch.vdot(calibration.flatten(), cartesian.flatten()).abs() / (
        calibration.norm() * cartesian.norm())
    assert correlation > 0.9
    assert (calibration - cartesian).norm() / cartesian.norm() < 0.45


@pytest.fixture(scope="module")
def espirit_maps(acquisition):
    return estimate_maps(acquisition.kspace, acquisition.coord, SHAPE, method="espirit",
                         calib_width=10, kernel_width=5)


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
    maps = estimate_maps(acquisition.kspace, acquisition.coord, SHAPE, method="jsense",
                         calib_width=10, max_iter=5)
    _assert_maps_match_truth(maps, acquisition)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="sense"), "method"),
        (dict(calib_width=2), "calib_width"),
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
