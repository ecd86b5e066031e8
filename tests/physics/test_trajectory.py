import math

import pytest
import torch

from blockrecon.physics.trajectory import (
    radial_3d,
    radial_directions,
    stack_of_spirals,
    stack_of_stars,
)


def _assert_inside_grid(coord: torch.Tensor, sizes: tuple[int, ...]) -> None:
    assert coord.dtype == torch.float32
    for d, n in enumerate(sizes):
        assert coord[..., d].min() >= -n / 2
        assert coord[..., d].max() < n / 2


def _consecutive_angles(directions: torch.Tensor) -> torch.Tensor:
    """Angles (radians) between consecutive spokes, as undirected lines."""
    cosine = (directions[1:] * directions[:-1]).sum(-1).abs().clamp(max=1)
    return torch.acos(cosine)


@pytest.mark.parametrize("golden", [True, False])
def test_radial_3d_shape_and_range(golden):
    coord = radial_3d(200, 32, golden=golden)
    assert coord.shape == (200, 32, 3)
    _assert_inside_grid(coord, (32, 32, 32))
    # Full spokes: unit readout spacing and the centre sample at k = 0.
    step = (coord[:, 1:] - coord[:, :-1]).norm(dim=-1)
    assert torch.allclose(step, torch.ones_like(step), atol=1e-5)
    assert coord[:, 16].abs().max() < 1e-6


def test_radial_3d_readout_oversampling_scales_to_image_size():
    coord = radial_3d(10, 64, image_size=32)
    _assert_inside_grid(coord, (32, 32, 32))
    step = (coord[:, 1:] - coord[:, :-1]).norm(dim=-1)
    assert torch.allclose(step, torch.full_like(step, 0.5), atol=1e-5)
    assert coord.norm(dim=-1).max() > 15.9


def test_golden_means_spread_consecutive_spokes_and_cover_hemisphere():
    golden = radial_directions(500, golden=True)
    uniform = radial_directions(500, golden=False)
    assert torch.allclose(golden.norm(dim=-1), torch.ones(500, dtype=torch.float64))
    # Consecutive golden-means spokes are far apart; the uniform spiral moves in small steps.
    assert _consecutive_angles(golden).mean() > 3 * _consecutive_angles(uniform).mean()
    assert _consecutive_angles(golden).median() > math.radians(30)
    # Any contiguous run covers the hemisphere: dz is uniform on [0, 1) (mean 1/2, all octants).
    for start in (0, 137, 300):
        run = golden[start : start + 100]
        assert abs(run[:, 0].mean().item() - 0.5) < 0.05
        octants = {(bool(d[1] > 0), bool(d[2] > 0), bool(d[0] > 0.5)) for d in run}
        assert len(octants) == 8


def test_stack_of_stars_shape_partitions_and_golden_angle():
    coord = stack_of_stars(13, 32, 8)
    assert coord.shape == (13, 8, 32, 3)
    _assert_inside_grid(coord, (8, 32, 32))
    assert torch.equal(coord[0, :, 0, 0], torch.arange(-4.0, 4.0))
    angle = torch.atan2(coord[:, 0, 0, 1], coord[:, 0, 0, 2])
    step = torch.remainder(angle[1:] - angle[:-1], math.pi)
    assert torch.allclose(step, torch.full_like(step, math.radians(111.246)), atol=1e-3)
    uniform = stack_of_stars(4, 32, 2, golden=False)
    angle = torch.atan2(uniform[:, 0, 0, 1], uniform[:, 0, 0, 2])
    assert torch.allclose(
        torch.remainder(angle[1:] - angle[:-1], math.pi), torch.full((3,), math.pi / 4), atol=1e-5
    )


def test_stack_of_spirals_nyquist_default():
    n, interleaves = 32, 8
    n_readout = math.ceil(math.pi * n * (n / (2 * interleaves)) / 2) + 8
    coord = stack_of_spirals(interleaves, n_readout, 4, image_size=n)
    assert coord.shape == (interleaves, 4, n_readout, 3)
    _assert_inside_grid(coord, (4, n, n))
    in_plane = coord[:, 0, :, 1:]
    assert in_plane[:, 0].abs().max() == 0  # centre-out
    assert in_plane.norm(dim=-1).max() > 0.95 * n / 2
    assert (in_plane[:, 1:] - in_plane[:, :-1]).norm(dim=-1).max() <= 1.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: radial_3d(0, 32), "n_spokes"),
        (lambda: radial_3d(10, 3.5), "n_readout"),
        (lambda: stack_of_stars(10, 32, -1), "n_partitions"),
        (lambda: stack_of_spirals(4, 100, 2, image_size=32, n_turns=-1.0), "n_turns"),
        (lambda: stack_of_spirals(4, 100, 2, image_size=0), "image_size"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
