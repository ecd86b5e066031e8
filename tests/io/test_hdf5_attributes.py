"""Further root attributes of a blockrecon HDF5 file: written as given, checked first."""

import h5py
import numpy as np
import pytest

from blockrecon.io import read_acquisition, write_acquisition


def test_attributes_are_stored_and_the_file_still_reads(tmp_path, acquisition):
    attributes = {"method": "cg", "factor": 2.5, "seed": 3, "kept": np.array([0, 2, 5])}
    path = write_acquisition(tmp_path / "acq.h5", acquisition, attributes=attributes)
    with h5py.File(path) as handle:
        assert handle.attrs["method"] == "cg" and handle.attrs["factor"] == 2.5
        assert handle.attrs["seed"] == 3
        assert np.array_equal(handle.attrs["kept"], [0, 2, 5])
    assert read_acquisition(path).image_shape == acquisition.image_shape


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"image_shape": [1, 2, 3]}, "taken by the schema"),
        ({"format_version": 2}, "taken by the schema"),
        ({"note": None}, "must be a string, a number or numbers"),
        ({"note": {"a": 1}}, "must be a string, a number or numbers"),
    ],
)
def test_bad_attributes_are_named_and_nothing_is_written(
    tmp_path, acquisition, attributes, message
):
    with pytest.raises(ValueError, match=message):
        write_acquisition(tmp_path / "acq.h5", acquisition, attributes=attributes)
    assert list(tmp_path.iterdir()) == []
