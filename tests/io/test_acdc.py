"""ACDC-style NIfTI pairs: slice-major loading, label and image validation, missing files."""

import nibabel as nib
import numpy as np
import pytest

from blockrecon.io.acdc import find_acdc_pairs, load_acdc_folder, load_acdc_pair


def _write(path, data, dtype=np.float32):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=dtype), np.eye(4)), str(path))


def test_loads_a_pair_slice_major(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((20, 24, 3))
    label = rng.integers(0, 4, (20, 24, 3))
    _write(tmp_path / "patient001_frame01.nii.gz", image)
    _write(tmp_path / "patient001_frame01_gt.nii.gz", label, np.uint8)
    images, labels = load_acdc_pair(tmp_path / "patient001_frame01.nii.gz")
    assert images.shape == (3, 1, 20, 24) and labels.shape == (3, 20, 24)
    np.testing.assert_allclose(images[1, 0].numpy(), image[:, :, 1], rtol=1e-6)
    assert np.array_equal(labels[2].numpy(), label[:, :, 2])
    assert len(find_acdc_pairs(tmp_path)) == 1
    _write(tmp_path / "patient002_frame01.nii.gz", image[:16])
    _write(tmp_path / "patient002_frame01_gt.nii.gz", label[:16], np.uint8)
    with pytest.raises(ValueError, match="differ in-plane"):
        load_acdc_folder(tmp_path)
    images, labels = load_acdc_folder(tmp_path, size=32)
    assert images.shape == (6, 1, 32, 32) and labels.shape == (6, 32, 32)


@pytest.mark.parametrize(
    "label,message",
    [
        (np.zeros((8, 8, 3)) + 4, "0..3"),
        (np.zeros((8, 8, 2)), "does not match"),
        (np.zeros((8, 8)), "3D volume"),
        (np.full((8, 8, 3), 1.5), "integers"),
    ],
)
def test_label_validation(tmp_path, label, message):
    _write(tmp_path / "p_frame01.nii.gz", np.ones((8, 8, 3)))
    _write(tmp_path / "p_frame01_gt.nii.gz", label)
    with pytest.raises(ValueError, match=message):
        load_acdc_pair(tmp_path / "p_frame01.nii.gz")


def test_image_validation_and_missing_files(tmp_path):
    bad = np.ones((8, 8, 3))
    bad[0, 0, 0] = np.nan
    _write(tmp_path / "p.nii.gz", bad)
    _write(tmp_path / "p_gt.nii.gz", np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="NaN"):
        load_acdc_pair(tmp_path / "p.nii.gz")
    with pytest.raises(FileNotFoundError):
        load_acdc_pair(tmp_path / "q.nii.gz")
    (tmp_path / "r.nii.gz").write_bytes(b"not nifti")
    _write(tmp_path / "r_gt.nii.gz", np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="cannot read"):
        load_acdc_pair(tmp_path / "r.nii.gz")
    with pytest.raises(FileNotFoundError):
        find_acdc_pairs(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .* pairs"):
        find_acdc_pairs(tmp_path / "empty")
