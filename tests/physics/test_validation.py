"""Each validation check raises ValueError naming the problem, and accepts good input."""

import numpy as np
import pytest
import torch

from blockrecon.physics import validation as v

IMAGE_SHAPE = (8, 6)


def _coord(n=5):
    return torch.tensor([[-4.0, -3.0], [3.9, 2.9], [0.0, 0.0]]).repeat(n, 1)


def test_good_input_passes():
    v.check_coord(_coord(), IMAGE_SHAPE)
    v.check_coord(_coord().numpy(), IMAGE_SHAPE)
    v.check_image(torch.zeros(2, *IMAGE_SHAPE, dtype=torch.complex64), IMAGE_SHAPE)
    v.check_kspace(torch.zeros(3, 15, dtype=torch.complex64), (3, 15))
    v.check_maps(torch.ones(3, *IMAGE_SHAPE, dtype=torch.complex64), IMAGE_SHAPE)
    v.check_weights(torch.ones(15), (3, 15))
    v.check_coil_count(torch.zeros(2, 3, 15), torch.zeros(3, *IMAGE_SHAPE), sample_ndim=1)
    assert v.check_image_shape([4, np.int64(5), 6]) == (4, 5, 6)


def test_coord_range_is_closed():
    v.check_coord(torch.tensor([[4.0, -3.0], [-4.0, 3.0]]), IMAGE_SHAPE)


@pytest.mark.parametrize(
    "coord, match",
    [
        (torch.zeros(5, 3), "last dimension"),
        (torch.zeros(2), "sample axis"),
        (torch.tensor([[4.01, 0.0]]), r"coord\[..., 0\] must lie in \[-8/2, 8/2\]"),
        (torch.tensor([[0.0, -3.5]]), r"coord\[..., 1\] must lie in"),
        (torch.tensor([[float("nan"), 0.0]]), "non-finite"),
        (torch.zeros(5, 2, dtype=torch.complex64), "real"),
    ],
)
def test_bad_coord(coord, match):
    with pytest.raises(ValueError, match=match):
        v.check_coord(coord, IMAGE_SHAPE)


@pytest.mark.parametrize("shape", [(8,), (2, 2, 2, 2), (8, 0), (8, 2.5), "ab", 5])
def test_bad_image_shape(shape):
    with pytest.raises(ValueError, match="image_shape"):
        v.check_image_shape(shape)


def test_bad_image():
    with pytest.raises(ValueError, match="image must be complex"):
        v.check_image(torch.zeros(IMAGE_SHAPE), IMAGE_SHAPE)
    with pytest.raises(ValueError, match="image must have shape"):
        v.check_image(torch.zeros(8, 5, dtype=torch.complex64), IMAGE_SHAPE)
    x = torch.zeros(IMAGE_SHAPE, dtype=torch.complex64)
    x[1, 2] = complex(0, float("inf"))
    with pytest.raises(ValueError, match="image contains 1 non-finite"):
        v.check_image(x, IMAGE_SHAPE)
    with pytest.raises(ValueError, match="torch.Tensor"):
        v.check_image([[1j]], IMAGE_SHAPE)


def test_bad_kspace_maps_weights():
    y = torch.zeros(3, 15, dtype=torch.complex64)
    y[0, 0] = float("nan")
    with pytest.raises(ValueError, match="kspace contains"):
        v.check_kspace(y, (3, 15))
    with pytest.raises(ValueError, match="kspace must have shape"):
        v.check_kspace(y, (4, 15))
    with pytest.raises(ValueError, match="maps must have shape"):
        v.check_maps(torch.ones(3, 8, 5, dtype=torch.complex64), IMAGE_SHAPE)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        v.check_weights(-torch.ones(15), (3, 15))
    with pytest.raises(ValueError, match="does not broadcast"):
        v.check_weights(torch.ones(14), (3, 15))


def test_coil_count_mismatch():
    maps = torch.zeros(4, *IMAGE_SHAPE, dtype=torch.complex64)
    with pytest.raises(ValueError, match="coil count mismatch: kspace has 3"):
        v.check_coil_count(torch.zeros(3, 15, dtype=torch.complex64), maps)
    with pytest.raises(ValueError, match="coil count mismatch"):
        v.check_coil_count(torch.zeros(4, 3, 15), maps, sample_ndim=1)
    with pytest.raises(ValueError, match="coil axis"):
        v.check_coil_count(torch.zeros(15), maps, sample_ndim=1)


def test_finite_check_counts_exactly_and_survives_overflowing_sum():
    v.check_finite(torch.full((10,), 3e38), "big")  # sum overflows, values are finite
    x = torch.zeros(4, dtype=torch.complex64)
    x[1] = complex(float("nan"), 0)
    x[3] = complex(0, float("-inf"))
    with pytest.raises(ValueError, match="x contains 2 non-finite"):
        v.check_finite(x, "x")
