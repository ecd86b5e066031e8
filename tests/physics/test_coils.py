import pytest
import torch

from blockrecon.physics.coils import birdcage_maps
from blockrecon.physics.phantom import normalized_grid


def test_birdcage_shape_dtype_and_normalization():
    maps = birdcage_maps(8, (12, 14, 16))
    assert maps.shape == (8, 12, 14, 16) and maps.dtype == torch.complex64
    rss = (maps.abs() ** 2).sum(0)
    assert torch.allclose(rss, torch.ones_like(rss), atol=1e-5)


def test_birdcage_coils_differ_and_vary_smoothly():
    maps = birdcage_maps(8, (16, 16, 16))
    flat = maps.reshape(8, -1)
    gram = (flat @ flat.conj().T).abs() / flat.norm(dim=1)[:, None] / flat.norm(dim=1)[None, :]
    off_diagonal = gram[~torch.eye(8, dtype=torch.bool)]
    assert off_diagonal.max() < 0.95  # distinct sensitivities, so SENSE can unfold
    # Each coil is brightest on its own side: magnitude varies by more than 2x over the FOV.
    assert (maps.abs().amax(dim=(1, 2, 3)) / maps.abs().amin(dim=(1, 2, 3)) > 2).all()
    # Smooth inside the unit ball (where objects lie): neighbouring voxels differ little.
    z, y, x = normalized_grid((16, 16, 16))
    ball = (z**2 + y**2 + x**2 < 1)[..., 1:]
    step = (maps[..., 1:] - maps[..., :-1]).abs()
    assert step[:, ball].max() < 0.2 and step.mean() < 0.05


def test_birdcage_oversampled_matches_coarse_on_shared_voxels():
    coarse = birdcage_maps(6, (8, 8, 8))
    fine = birdcage_maps(6, (8, 8, 8), oversample=2)
    assert torch.allclose(fine[:, ::2, ::2, ::2], coarse, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_coils=0, shape=(8, 8, 8)), "n_coils"),
        (dict(n_coils=6, shape=(8, 8, 8), n_rings=4), "divide"),
        (dict(n_coils=6, shape=(8, 8, 8), radius=1.0), "radius"),
        (dict(n_coils=6, shape=(8, 8)), "3D"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        birdcage_maps(**kwargs)
