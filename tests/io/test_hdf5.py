"""blockrecon HDF5 acquisition file: round trip, dtype policy, a clear error per bad file."""

import os

import h5py
import numpy as np
import pytest
import torch

from blockrecon.io import FORMAT_VERSION, Acquisition, read_acquisition, write_acquisition

FIELDS = ("kspace", "coord", "maps", "dcf", "image")


def assert_same(a: Acquisition, b: Acquisition) -> None:
    assert a.image_shape == b.image_shape and a.voxel_size_mm == b.voxel_size_mm
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name


@pytest.mark.parametrize("extras", [True, False])
def test_round_trip(tmp_path, acquisition_factory, extras):
    original = acquisition_factory(extras=extras)
    path = write_acquisition(tmp_path / "acq.h5", original)
    assert_same(read_acquisition(path), original)
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert f["kspace"].dtype == np.complex64 and f["coord"].dtype == np.float32
        assert list(f.attrs["image_shape"]) == list(original.image_shape)


def test_round_trip_compressed_and_float64_input(tmp_path, acquisition):
    double = Acquisition(
        acquisition.kspace.to(torch.complex128),
        acquisition.coord.to(torch.float64),
        acquisition.image_shape,
        acquisition.voxel_size_mm,
    )
    path = write_acquisition(tmp_path / "acq.h5", double, compression="gzip")
    with h5py.File(path) as f:
        assert f["kspace"].compression == "gzip" and f["kspace"].dtype == np.complex64
    back = read_acquisition(path)
    assert torch.equal(back.kspace, acquisition.kspace)
    assert torch.equal(back.coord, acquisition.coord)


def test_reads_double_precision_and_real_imag_compound(tmp_path, acquisition):
    path = write_acquisition(tmp_path / "acq.h5", acquisition)
    kspace = acquisition.kspace.numpy()
    compound = np.empty(kspace.shape, dtype=[("real", "<f8"), ("imag", "<f8")])
    compound["real"], compound["imag"] = kspace.real, kspace.imag
    with h5py.File(path, "r+") as f:
        del f["kspace"], f["coord"]
        f["kspace"] = compound
        f["coord"] = acquisition.coord.numpy().astype(np.float64)
    back = read_acquisition(path)
    assert back.kspace.dtype == torch.complex64 and back.coord.dtype == torch.float32
    assert torch.equal(back.kspace, acquisition.kspace)
    assert torch.equal(back.coord, acquisition.coord)


def replace_dataset(name, make):
    """A corruption: replace dataset ``name`` by ``make(original_array)``."""

    def corrupt(f):
        value = make(f[name][()])
        del f[name]
        f[name] = value

    return corrupt


def set_kspace_value(value):
    def make(kspace):
        kspace[1, 2, 3] = value
        return kspace

    return replace_dataset("kspace", make)


def delete(name, attribute=False):
    def corrupt(f):
        del (f.attrs if attribute else f)[name]

    return corrupt


def set_attribute(name, value):
    def corrupt(f):
        f.attrs[name] = value

    return corrupt


MALFORMED = {
    "missing kspace": (delete("kspace"), "missing dataset 'kspace'"),
    "missing coord": (delete("coord"), "missing dataset 'coord'"),
    "kspace is a group": (
        lambda f: (delete("kspace")(f), f.create_group("kspace")),
        "'kspace' is a Group",
    ),
    "no format version": (delete("format_version", True), "not a blockrecon acquisition file"),
    "no format name": (delete("blockrecon_format", True), "no 'blockrecon_format' attribute"),
    "other format": (
        set_attribute("blockrecon_format", "checkpoint"),
        "blockrecon_format is 'checkpoint', expected 'acquisition'",
    ),
    "newer format": (set_attribute("format_version", FORMAT_VERSION + 1), "newer"),
    "missing image_shape": (delete("image_shape", True), "missing attribute 'image_shape'"),
    "float image_shape": (set_attribute("image_shape", [4.0, 6.0, 8.0]), "list of ints"),
    "missing voxel size": (delete("voxel_size_mm", True), "missing attribute 'voxel_size_mm'"),
    "negative voxel size": (set_attribute("voxel_size_mm", [1.0, -1.0, 1.0]), "positive"),
    "real kspace": (replace_dataset("kspace", lambda k: k.real.copy()), "kspace must be complex"),
    "integer coord": (
        replace_dataset("coord", lambda c: c.astype(np.int32)),
        "'coord' has dtype int32",
    ),
    "coord last dim 2": (
        replace_dataset("coord", lambda c: c[..., :2].copy()),
        "last dimension must equal the image dimensionality 3",
    ),
    "kspace samples differ": (
        replace_dataset("kspace", lambda k: k[:, :, :-1].copy()),
        "kspace must have shape",
    ),
    "kspace without coil axis": (
        replace_dataset("kspace", lambda k: k[0].copy()),
        "kspace must have shape",
    ),
    "maps coil count": (replace_dataset("maps", lambda m: m[:-1].copy()), "coil count mismatch"),
    "maps image shape": (
        replace_dataset("maps", lambda m: m[:, :, :, :-1].copy()),
        "maps must have shape",
    ),
    "image shape": (replace_dataset("image", lambda x: x[:-1].copy()), "image must have shape"),
    "real image": (replace_dataset("image", lambda x: x.real.copy()), "image must be complex"),
    "dcf shape": (replace_dataset("dcf", lambda d: d[:-1].copy()), "dcf shape"),
    "negative dcf": (replace_dataset("dcf", lambda d: -d), "dcf must be non-negative"),
    "coord out of range": (
        replace_dataset("coord", lambda c: c + np.float32([0, 0, 4])),
        r"coord\[..., 2\] must lie in \[-8/2, 8/2\]",
    ),
    "coord NaN": (replace_dataset("coord", lambda c: np.where(c > 1, np.nan, c)), "non-finite"),
    "NaN in kspace": (set_kspace_value(np.nan), "kspace contains 1 non-finite"),
    "Inf in kspace": (set_kspace_value(complex(0.0, np.inf)), "kspace contains 1 non-finite"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_raises_naming_problem_and_file(tmp_path, acquisition, case):
    corrupt, message = MALFORMED[case]
    path = write_acquisition(tmp_path / "bad.h5", acquisition)
    with h5py.File(path, "r+") as f:
        corrupt(f)
    with pytest.raises(ValueError, match=message) as info:
        read_acquisition(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.h5"):
        read_acquisition(tmp_path / "no_such.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not an HDF5 file at all")
    with pytest.raises(ValueError, match=f"{path}: not an HDF5 file"):
        read_acquisition(path)


def test_truncated_file(tmp_path, acquisition):
    path = write_acquisition(tmp_path / "acq.h5", acquisition)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        read_acquisition(path)
    assert str(path) in str(info.value)


def test_invalid_data_is_not_written(tmp_path, acquisition):
    acquisition.kspace[0, 0, 0] = float("nan")
    target = tmp_path / "acq.h5"
    with pytest.raises(ValueError, match="non-finite"):
        write_acquisition(target, acquisition)
    assert os.listdir(tmp_path) == []


def test_invalid_data_keeps_previous_file(tmp_path, acquisition_factory):
    good = acquisition_factory(seed=1)
    target = write_acquisition(tmp_path / "acq.h5", good)
    bad = acquisition_factory(seed=2)
    bad.coord[0, 0, 0] = 100.0
    with pytest.raises(ValueError, match="must lie in"):
        write_acquisition(target, bad)
    assert_same(read_acquisition(target), good)
    assert os.listdir(tmp_path) == ["acq.h5"]


def test_failure_half_way_leaves_no_file(tmp_path, acquisition, monkeypatch):
    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "maps":  # kspace and coord are already written
            raise OSError("No space left on device")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="No space left"):
        write_acquisition(tmp_path / "acq.h5", acquisition)
    assert os.listdir(tmp_path) == []
