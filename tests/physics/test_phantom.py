import pytest
import torch

from blockrecon.physics.phantom import normalized_grid, random_ellipsoids, shepp_logan_3d


def test_shepp_logan_shape_dtype_range_and_smooth_phase():
    image = shepp_logan_3d((16, 20, 24))
    assert image.shape == (16, 20, 24) and image.dtype == torch.complex64
    magnitude = image.abs()
    assert magnitude.max() <= 1 + 1e-6
    assert magnitude[0, 0, 0] < 1e-3  # background
    sharp = shepp_logan_3d((16, 20, 24), edge_width=0).abs()
    assert abs(sharp[8, 10, 12] - 0.2) < 1e-6  # brain: 1 - 0.8
    # The outer shell (intensity 1) is thinner than a voxel at 16, but sampled at 64.
    assert abs(shepp_logan_3d((64, 64, 64), edge_width=0).abs().max() - 1) < 1e-6
    phase = torch.angle(image[magnitude > 0.1])
    assert phase.std() > 0.05  # not real-valued
    neighbour_phase_step = torch.angle(image[:, :, 1:] * image[:, :, :-1].conj())
    inside = (magnitude[:, :, 1:] > 0.1) & (magnitude[:, :, :-1] > 0.1)
    assert neighbour_phase_step[inside].abs().max() < 0.2  # smooth


def test_oversampled_phantom_is_the_same_object_on_a_finer_grid():
    coarse = shepp_logan_3d((16, 16, 16))
    fine = shepp_logan_3d((16, 16, 16), oversample=2)
    assert fine.shape == (32, 32, 32)
    # Coarse voxel centres are the even fine voxels.
    assert torch.allclose(fine[::2, ::2, ::2], coarse, atol=1e-6)
    z, y, x = normalized_grid((16, 16, 16), oversample=2)
    assert z[16, 0, 0] == 0 and x.min() == -1 and x.max() < 1


def test_random_ellipsoids_seeded():
    a = random_ellipsoids((16, 16, 16), n_ellipsoids=5, seed=3)
    b = random_ellipsoids((16, 16, 16), n_ellipsoids=5, seed=3)
    c = random_ellipsoids((16, 16, 16), n_ellipsoids=5, seed=4)
    assert a.dtype == torch.complex64 and a.shape == (16, 16, 16)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1
    assert 0.2 <= a.abs().max() <= 1 + 1e-6
    # Everything lies inside the unit ball: the corners are empty.
    assert a.abs()[0, 0, 0] < 1e-3 and a.abs()[-1, -1, -1] < 1e-3


def test_edge_smoothing_reduces_high_frequency_energy():
    def high_frequency_fraction(image):
        spectrum = torch.fft.fftshift(torch.fft.fftn(image)).abs() ** 2
        centre = spectrum[8:24, 8:24, 8:24].sum()
        return 1 - centre / spectrum.sum()

    sharp = high_frequency_fraction(shepp_logan_3d((32, 32, 32), edge_width=0))
    smooth = high_frequency_fraction(shepp_logan_3d((32, 32, 32), edge_width=0.5))
    assert smooth < 0.5 * sharp


def test_sharp_edges_have_only_phantom_intensities():
    magnitude = shepp_logan_3d((16, 16, 16), edge_width=0).abs()
    levels = torch.unique(torch.round(magnitude * 100) / 100)
    assert len(levels) < 12


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shepp_logan_3d((16, 16)), "3D"),
        (lambda: shepp_logan_3d((16, 0, 16)), "positive"),
        (lambda: shepp_logan_3d((8, 8, 8), oversample=0), "oversample"),
        (lambda: shepp_logan_3d((8, 8, 8), edge_width=float("nan")), "edge_width"),
        (lambda: random_ellipsoids((8, 8, 8), n_ellipsoids=0), "n_ellipsoids"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
