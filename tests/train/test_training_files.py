"""Training files streamed from disk: checks from metadata, a memory budget that changes memory
and time but never the losses."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from blockrecon.io import read_acquisition, write_acquisition
from blockrecon.io.hdf5 import read_acquisition_info
from blockrecon.physics import radial_3d, simulate_acquisition
from blockrecon.train import AcquisitionFiles, SelfSupervised, fit
from blockrecon.train.cache import PairCache, pair_nbytes
from blockrecon.train.files import estimated_pair_bytes

CONFIG = {"regularizer": {"width": 4, "n_layers": 2}, "n_unrolls": 1, "patch_size": 8}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three 12^3, 2-coil scans with maps and reference images."""
    path = tmp_path_factory.mktemp("scans")
    for i in range(3):
        acq = simulate_acquisition(radial_3d(40, 12), (12, 12, 12), n_coils=2, snr_db=40, seed=i)
        write_acquisition(path / f"scan{i}.h5", acq)
    return path


def test_info_matches_the_file(folder):
    path = folder / "scan0.h5"
    info, acq = read_acquisition_info(path), read_acquisition(path)
    assert info.image_shape == acq.image_shape and info.num_coils == acq.num_coils
    assert info.sample_shape == acq.sample_shape
    assert info.datasets == {"kspace", "coord", "maps", "image"}
    tensors = (acq.kspace, acq.coord, acq.maps, acq.image)
    assert info.nbytes == sum(t.numel() * t.element_size() for t in tensors)


def _rewrite(src, dst, name, value):
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        for key, v in a.attrs.items():
            b.attrs[key] = v
        for key in a:
            b.create_dataset(key, data=value if key == name else a[key][()])


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("maps", lambda a: a[:1], r"'maps' has shape \(1, "),
        ("coord", lambda a: a.astype(np.int32), "'coord' has dtype int32"),
        ("coord", lambda a: a * 3, r"must lie in \[-12/2, 12/2\]"),
        ("kspace", lambda a: a.real, "'kspace' has dtype float32"),
        ("image", lambda a: a[:4], "'image' has shape"),
    ],
)
def test_info_refuses_bad_files_naming_them(folder, tmp_path, name, make, message):
    with h5py.File(folder / "scan0.h5") as f:
        value = make(f[name][()])
    bad = tmp_path / "bad.h5"
    _rewrite(folder / "scan0.h5", bad, name, value)
    with pytest.raises(ValueError, match=message) as error:
        read_acquisition_info(bad)
    assert str(bad) in str(error.value)


@pytest.mark.parametrize("weights", [False, True])
def test_estimated_bytes_are_those_of_the_built_pair(folder, weights):
    data = AcquisitionFiles.from_folder(folder, density_weights=weights)
    info = data.infos[0]
    assert estimated_pair_bytes(info, weights=weights) == pair_nbytes(data[0])


def test_memory_budget_is_respected_and_leaves_the_losses_unchanged(folder, tmp_path):
    one_pair = estimated_pair_bytes(read_acquisition_info(folder / "scan0.h5"))
    runs = {}
    for name, budget in (("all", None), ("one", one_pair + 10), ("none", 0)):
        data = AcquisitionFiles.from_folder(folder, memory_budget=budget)
        result = fit(CONFIG, data, tmp_path / name, epochs=2, seed=3, progress=False)
        runs[name] = [h["train_loss"] for h in result.history]
        kept = {"all": 3, "one": 1, "none": 0}[name]
        assert len(data.cache) == kept and data.cache.held_bytes == kept * one_pair
        # fit reads item 0 once before training: kept when anything fits, else built again
        assert data.cache.builds == {"all": 3, "one": 5, "none": 7}[name]
        assert result.history[-1]["data_bytes_kept"] == kept * one_pair
    assert runs["one"] == runs["all"] and runs["none"] == runs["all"]


def test_splits_share_the_files_budget(folder, tmp_path):
    data = AcquisitionFiles.from_folder(folder, memory_budget=0)
    view = SelfSupervised(0.4).data(data, seed=0)
    assert view.cache is data.cache
    view[0]
    assert len(data.cache) == 0 and data.cache.builds == 2  # the file's pair, then its split


def test_files_without_reference_images_train_only_self_supervised(folder, tmp_path):
    acq = read_acquisition(folder / "scan0.h5")
    write_acquisition(tmp_path / "raw.h5", replace(acq, image=None))
    with pytest.raises(ValueError, match="no reference image.*self-supervised"):
        AcquisitionFiles([tmp_path / "raw.h5"])
    data = AcquisitionFiles([tmp_path / "raw.h5"], require_image=False)
    assert data[0].target is None and data.readouts == [acq.sample_shape[0]]


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError, match="non-negative number of bytes"):
        PairCache(-1)


def test_scans_of_different_shapes_train_together_in_one_batch(folder, tmp_path):
    """Pairs are reconstructed one at a time, so a batch may mix image shapes."""
    other = simulate_acquisition(radial_3d(40, 16), (16, 16, 16), n_coils=2, snr_db=40, seed=9)
    write_acquisition(tmp_path / "other.h5", other)
    data = AcquisitionFiles([folder / "scan0.h5", tmp_path / "other.h5"])
    result = fit(CONFIG, data, tmp_path / "run", epochs=1, batch_size=2, progress=False)
    assert result.history[0]["batches"] == 1 and result.history[0]["train_loss"] > 0


def test_subsets_share_one_budget_and_keep_their_own_pairs(folder):
    one_pair = estimated_pair_bytes(read_acquisition_info(folder / "scan0.h5"))
    everything = AcquisitionFiles.from_folder(folder, memory_budget=one_pair + 10)
    train, val = everything.subset(range(2)), everything.subset(range(2, 3))
    assert train.cache is val.cache is everything.cache
    assert torch.equal(val[0].kspace, everything[2].kspace)
    assert not torch.equal(train[0].kspace, val[0].kspace)  # index 0 of each: two pairs
    assert everything.cache.held_bytes <= one_pair + 10


def test_split_views_sharing_a_cache_keep_their_own_pairs(folder):
    data = AcquisitionFiles.from_folder(folder)
    first, second = data.subset(range(1)), data.subset(range(1, 2))
    views = [SelfSupervised(0.4).data(d, seed=0) for d in (first, second)]
    assert views[0].cache is views[1].cache
    assert not torch.equal(views[0][0].kspace, views[1][0].kspace)
