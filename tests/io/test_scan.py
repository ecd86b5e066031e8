"""A scan read by content (blockrecon HDF5 or ISMRMRD), coil maps from a file, images written."""

from dataclasses import replace

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from blockrecon.io import (
    read_maps,
    read_scan,
    write_acquisition,
    write_image,
    write_ismrmrd,
)


def test_scan_kind_is_told_by_content(acquisition_factory, tmp_path):
    acq = acquisition_factory(extras=False)
    native = write_acquisition(tmp_path / "scan.data", acq)
    mrd = write_ismrmrd(tmp_path / "raw.h5", acq)
    assert torch.equal(read_scan(native).kspace, acq.kspace)
    assert torch.allclose(read_scan(mrd).kspace, acq.kspace)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="neither a blockrecon acquisition file"):
        read_scan(other)


def test_maps_are_read_as_complex64_and_checked(acquisition, tmp_path):
    path = tmp_path / "maps.h5"
    maps = acquisition.maps.numpy()
    compound = np.empty(maps.shape, np.dtype([("r", "<f4"), ("i", "<f4")]))
    compound["r"], compound["i"] = maps.real, maps.imag
    with h5py.File(path, "w") as handle:
        handle["maps"] = compound
    assert torch.equal(read_maps(path, replace(acquisition, maps=None)), acquisition.maps)
    with pytest.raises(ValueError, match="coil"):
        read_maps(path, replace(acquisition, kspace=acquisition.kspace[:2], maps=None))
    with h5py.File(path, "w") as handle:
        handle["maps"] = maps.real
    with pytest.raises(ValueError, match="expected complex64"):
        read_maps(path, acquisition)


def test_image_is_written_as_nifti_or_hdf5_by_suffix(acquisition, tmp_path):
    image = acquisition.image
    write_image(tmp_path / "x.nii.gz", image, (3.0, 2.0, 1.5), "cg")
    assert np.allclose(nib.load(tmp_path / "x.nii.gz").header.get_zooms(), (1.5, 2.0, 3.0))
    write_image(tmp_path / "x.h5", image, (3.0, 2.0, 1.5), "cg")
    with h5py.File(tmp_path / "x.h5") as handle:
        assert np.array_equal(handle["image"][()], image.numpy())
        assert handle.attrs["method"] == "cg" and handle.attrs["blockrecon_format"] == "image"
    with pytest.raises(ValueError, match="must end in"):
        write_image(tmp_path / "x.png", image, (1.0,) * 3, "cg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5", "x.nii.gz"]
