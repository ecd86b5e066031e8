"""Synthetic cine generator: shapes, seeding, anatomy."""

import pytest
import torch
from scipy import ndimage

from blockrecon.seg.data import synthetic_cine
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
