import pytest
import torch

from blockrecon.physics.dcf import pipe_menon_dcf
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.phantom import normalized_grid, shepp_logan_3d
from blockrecon.physics.trajectory import radial_3d

N = 16
SHAPE = (N, N, N)


def _grid(coord, weights, image):
    nufft = NUFFT(coord, SHAPE)
    return nufft.adjoint(weights * nufft(image))


def _gridding_error(coord, weights, image):
    """Relative error of A^H(w A x) against x, without any rescaling."""
    return ((_grid(coord, weights, image) - image).norm() / image.norm()).item()


def test_fully_sampled_cartesian_grid_gets_unit_weights():
    axes = [torch.arange(n, dtype=torch.float32) - n // 2 for n in SHAPE]
    coord = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    weights = pipe_menon_dcf(coord, SHAPE, progress=False)
    assert weights.shape == SHAPE and weights.dtype == torch.float32
    assert torch.allclose(weights, torch.ones_like(weights), rtol=0.02)


def test_radial_dcf_compensates_density_and_restores_scale():
    coord = radial_3d(400, N)
    weights = pipe_menon_dcf(coord, SHAPE, progress=False)
    assert weights.shape == (400, N) and (weights > 0).all()
    radius = coord.norm(dim=-1)
    # Radial density falls as 1/r^2, so weights grow about as r^2 (mid-radius, before the edge).
    ratio = (
        weights[(radius > 5.5) & (radius < 6.5)].mean()
        / weights[(radius > 2.5) & (radius < 3.5)].mean()
    )
    assert 2.5 < ratio < 5.5  # (6/3)^2 = 4
    # A smooth blob is gridded back at unit scale and shape; without weights it is not.
    z, y, x = normalized_grid(SHAPE)
    blob = torch.exp(-(x**2 + y**2 + z**2) / (2 * 0.2**2)).to(torch.complex64)
    gridded = _grid(coord, weights, blob)
    least_squares_scale = torch.vdot(gridded.flatten(), blob.flatten()) / gridded.norm() ** 2
    assert abs(least_squares_scale - 1) < 0.03
    assert _gridding_error(coord, weights, blob) < 0.15
    unweighted = torch.full_like(weights, weights.mean().item())
    assert _gridding_error(coord, unweighted, blob) > 3 * _gridding_error(coord, weights, blob)
    phantom = shepp_logan_3d(SHAPE)
    assert _gridding_error(coord, weights, phantom) < _gridding_error(coord, unweighted, phantom)


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(10, 2), SHAPE), "last dimension"),
        ((torch.full((10, 3), 9.0), SHAPE), r"\[-16/2, 16/2\]"),
        ((torch.zeros(10, 3), (N, N, 0)), "positive"),
    ],
)
def test_bad_input_raises_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        pipe_menon_dcf(*args, progress=False)


def test_bad_iteration_count():
    with pytest.raises(ValueError, match="n_iter"):
        pipe_menon_dcf(radial_3d(4, N), SHAPE, n_iter=0)
