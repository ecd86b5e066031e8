"""NIfTI export: data and affine read back by nibabel, complex modes, validation, atomicity."""

import os

import nibabel as nib
import numpy as np
import pytest
import torch

from blockrecon.io import nifti_affine, write_nifti
from blockrecon.io.nifti import write_nifti_vector

SHAPE_ZYX = (4, 6, 8)
VOXEL_ZYX = (3.0, 2.0, 1.5)


@pytest.fixture
def volume() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(SHAPE_ZYX, dtype=torch.complex64, generator=g)


def test_magnitude_round_trip_and_affine(tmp_path, volume):
    path = write_nifti(tmp_path / "recon.nii.gz", volume, VOXEL_ZYX)
    image = nib.load(path)
    assert image.shape == (8, 6, 4)  # (x, y, z)
    np.testing.assert_allclose(
        image.get_fdata(dtype=np.float32),  # |z| to float32 rounding
        volume.abs().numpy().transpose(2, 1, 0),
        rtol=1e-6,
    )
    expected = np.array([[1.5, 0, 0, -1.5 * 4], [0, 2, 0, -2 * 3], [0, 0, 3, -3 * 2], [0, 0, 0, 1]])
    np.testing.assert_allclose(image.affine, expected)
    np.testing.assert_allclose(image.header.get_qform(), expected)
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    assert image.header.get_xyzt_units()[0] == "mm"
    assert image.header.get_zooms() == (1.5, 2.0, 3.0)
    # the FFT centre voxel (N // 2 on every axis) is the world origin
    np.testing.assert_allclose(image.affine @ [4, 3, 2, 1], [0, 0, 0, 1])
    assert os.listdir(tmp_path) == ["recon.nii.gz"]


def test_xyz_order_is_stored_as_given(tmp_path, volume):
    write_nifti(tmp_path / "v.nii", volume, (1.0, 2.0, 3.0), axis_order="xyz")
    image = nib.load(tmp_path / "v.nii")
    assert image.shape == SHAPE_ZYX
    assert image.header.get_zooms() == (1.0, 2.0, 3.0)
    np.testing.assert_allclose(image.get_fdata(dtype=np.float32), volume.abs().numpy(), rtol=1e-6)


def test_complex_modes(tmp_path, volume):
    write_nifti(tmp_path / "ri.nii.gz", volume, VOXEL_ZYX, complex_mode="real_imag")
    write_nifti(tmp_path / "c.nii.gz", volume, VOXEL_ZYX, complex_mode="complex")
    real_imag = nib.load(tmp_path / "ri.nii.gz").get_fdata(dtype=np.float32)
    xyz = volume.numpy().transpose(2, 1, 0)
    assert real_imag.shape == (8, 6, 4, 2)
    np.testing.assert_array_equal(real_imag[..., 0], xyz.real)
    np.testing.assert_array_equal(real_imag[..., 1], xyz.imag)
    stored = nib.load(tmp_path / "c.nii.gz")
    assert stored.get_data_dtype() == np.complex64
    np.testing.assert_array_equal(np.asanyarray(stored.dataobj), xyz)


def test_real_volume_keeps_its_sign(tmp_path, volume):
    real = volume.real.double()
    write_nifti(tmp_path / "r.nii", real, VOXEL_ZYX)
    stored = nib.load(tmp_path / "r.nii")
    assert stored.get_data_dtype() == np.float32
    np.testing.assert_array_equal(
        np.asanyarray(stored.dataobj), real.float().numpy().transpose(2, 1, 0)
    )


def test_nifti_affine_matches_formula():
    affine = nifti_affine((5, 4, 3), (0.5, 1.0, 2.0))
    np.testing.assert_allclose(np.diag(affine), [0.5, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(affine[:3, 3], [-1.0, -2.0, -2.0])


BAD_ARGUMENTS = {
    "NaN": (lambda v: torch.where(v.abs() > 1.5, torch.nan, v), {}, "non-finite"),
    "4D": (lambda v: v[None], {}, "must be 3D"),
    "integer": (lambda v: v.real.int(), {}, "floating point"),
    "voxel count": (lambda v: v, {"voxel_size_mm": (1.0, 1.0)}, "3 positive numbers"),
    "zero voxel": (lambda v: v, {"voxel_size_mm": (1.0, 0.0, 1.0)}, "3 positive numbers"),
    "mode": (lambda v: v, {"complex_mode": "phase"}, "complex_mode must be one of"),
    "order": (lambda v: v, {"axis_order": "yxz"}, "axis_order must be one of"),
    "suffix": (lambda v: v, {"path": "recon.img"}, r"must end in \.nii or \.nii\.gz"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_input_raises_and_writes_nothing(tmp_path, volume, case):
    change, overrides, message = BAD_ARGUMENTS[case]
    kwargs = {"voxel_size_mm": VOXEL_ZYX, **overrides}
    path = tmp_path / kwargs.pop("path", "recon.nii.gz")
    with pytest.raises(ValueError, match=message):
        write_nifti(path, change(volume), **kwargs)
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_previous_file(tmp_path, volume, monkeypatch):
    path = write_nifti(tmp_path / "recon.nii.gz", volume, VOXEL_ZYX)
    before = path.read_bytes()

    def failing_save(image, filename):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(nib, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        write_nifti(path, 2 * volume, VOXEL_ZYX)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["recon.nii.gz"]


def test_vector_field_is_a_nifti_vector_image_with_components_in_axis_order(tmp_path):
    field = torch.stack([torch.full((2, 3, 4), value) for value in (1.0, 2.0, 3.0)])  # (z, y, x)
    field[2, 1, 2, 3] = 7.0  # x component at z=1, y=2, x=3
    path = write_nifti_vector(tmp_path / "v.nii.gz", field, (0.5, 0.25, 0.125))
    image = nib.load(path)
    assert image.shape == (4, 3, 2, 1, 3) and image.header.get_intent()[0] == "vector"
    data = np.asarray(image.dataobj)[:, :, :, 0, :]
    np.testing.assert_array_equal(data[0, 0, 0], [3.0, 2.0, 1.0])  # (x, y, z) components
    assert data[3, 2, 1, 0] == 7.0
    np.testing.assert_allclose(image.header.get_zooms()[:3], (0.125, 0.25, 0.5))
    with pytest.raises(ValueError, match=r"\(3, nz, ny, nx\)"):
        write_nifti_vector(tmp_path / "w.nii.gz", field[:2], (1, 1, 1))
    bad = field.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        write_nifti_vector(tmp_path / "w.nii.gz", bad, (1, 1, 1))
    assert not (tmp_path / "w.nii.gz").exists()
