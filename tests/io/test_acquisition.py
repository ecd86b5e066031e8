"""The in-memory Acquisition: validation of each field and dtype normalization."""

import pytest
import torch

from blockrecon.io import Acquisition, check_acquisition, standard_dtypes


def test_valid_acquisition_passes_and_reports_its_shapes(acquisition):
    check_acquisition(acquisition)
    assert acquisition.num_coils == 3 and acquisition.sample_shape == (5, 7)
    moved = acquisition.to("cpu")
    assert moved is not acquisition and torch.equal(moved.maps, acquisition.maps)


def test_standard_dtypes_converts_only_floating_fields(acquisition):
    double = Acquisition(
        acquisition.kspace.to(torch.complex128),
        acquisition.coord.double(),
        acquisition.image_shape,
        dcf=acquisition.dcf.double(),
    )
    single = standard_dtypes(double)
    assert (single.kspace.dtype, single.coord.dtype, single.dcf.dtype) == (
        torch.complex64,
        torch.float32,
        torch.float32,
    )
    assert standard_dtypes(acquisition) is acquisition
    integer = Acquisition(acquisition.kspace, acquisition.coord.int(), acquisition.image_shape)
    assert standard_dtypes(integer).coord.dtype == torch.int32


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kspace": [1, 2]}, "kspace must be a torch.Tensor"),
        ({"maps": "maps.npy"}, "maps must be a torch.Tensor"),
        ({"voxel_size_mm": (1.0, 1.0)}, "voxel_size_mm must have 3 entries"),
        ({"voxel_size_mm": (1.0, float("inf"), 1.0)}, "positive and finite"),
        ({"image_shape": (4, 6, 0)}, "positive ints"),
        ({"image_shape": (4, 6, 8, 2)}, "2 or 3 entries"),
    ],
)
def test_invalid_fields_name_the_problem_and_source(acquisition, change, message):
    for name, value in change.items():
        object.__setattr__(acquisition, name, value)
    with pytest.raises(ValueError, match=message) as info:
        check_acquisition(acquisition, source="sim.h5")
    assert str(info.value).startswith("sim.h5: ")
