"""Synthetic cine generator (shapes, seeding, anatomy) and ACDC-style NIfTI loading."""

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from blockrecon.seg.data import (
    find_acdc_pairs,
    load_acdc_folder,
    load_acdc_pair,
    synthetic_cine,
)
from blockrecon.seg.data.synthetic import LV, MYO, RV


@pytest.fixture(scope="module")
def cine():
    return synthetic_cine(4, 6, 96, seed=3, oversample=2)


def test_shapes_dtypes_and_labels(cine):
    images, labels = cine
    assert images.shape == (24, 1, 96, 96) and images.dtype == torch.float32
    assert labels.shape == (24, 96, 96) and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) == {0, 1, 2, 3}
    assert torch.isfinite(images).all() and images.min() >= 0  # Rician magnitude


def test_seeding_is_reproducible_and_seeds_differ():
    a = synthetic_cine(1, 2, 64, seed=7, oversample=2)
    b = synthetic_cine(1, 2, 64, seed=7, oversample=2)
    c = synthetic_cine(1, 2, 64, seed=8, oversample=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_lv_lies_inside_the_myocardial_ring_and_rv_is_beside_it(cine):
    _, labels = cine
    for lab in labels.numpy():
        lv, myo, rv = lab == LV, lab == MYO, lab == RV
        assert ndimage.label(lv)[1] == 1
        # Filling the myocardial ring's hole covers the whole blood pool: a closed ring.
        assert (ndimage.binary_fill_holes(myo) >= lv).all()
        # The LV touches only myocardium; the RV touches the myocardium (septum), not the LV.
        assert not (ndimage.binary_dilation(lv) & ~(lv | myo)).any()
        assert (ndimage.binary_dilation(rv) & myo).any()
        assert (lab[lv] == LV).all() and not (ndimage.binary_dilation(rv) & lv).any()


def test_heart_contracts_and_blood_is_brighter_than_myocardium(cine):
    images, labels = cine
    lv_area = (labels == LV).sum(dim=(1, 2)).view(4, 6).float()
    assert (lv_area[:, 0] > 1.3 * lv_area[:, 2]).all()  # end-diastole vs end-systole
    for img, lab in zip(images[:, 0], labels, strict=True):
        assert img[lab == LV].median() > 1.8 * img[lab == MYO].median()


def test_scales_differ_in_heart_size():
    _, human = synthetic_cine(4, 1, 64, scale="human", seed=1, oversample=2)
    _, animal = synthetic_cine(4, 1, 64, scale="small_animal", seed=1, oversample=2)
    assert (animal > 0).sum() > 1.5 * (human > 0).sum()


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="scale"):
        synthetic_cine(1, 1, 64, scale="dog")
    with pytest.raises(ValueError, match="size"):
        synthetic_cine(1, 1, 8)


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
