"""Gridding reconstruction: bad density weights and maps are named."""

import pytest

from blockrecon.recon import grid_recon


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, d: grid_recon(a.kspace, a.coord, a.maps, dcf=d[:5]), "dcf"),
        (lambda a, d: grid_recon(a.kspace, a.coord, a.maps.abs(), dcf=d), "complex"),
    ],
)
def test_bad_input_raises_value_error(high, call, message):
    acq, dcf = high
    with pytest.raises(ValueError, match=message):
        call(acq, dcf)
