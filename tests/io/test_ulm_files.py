"""ULM acquisition files (blockrecon.io.ulm): round trip, dtypes, atomic writes, bad files."""

import dataclasses

import numpy as np
import pytest
import torch

from blockrecon.io.ulm import read_ulm_acquisition, read_ulm_iq, write_ulm_acquisition
from blockrecon.ulm import simulate_acquisition


def _small(seed=0, **kw):
    kw.setdefault("progress", False)
    return simulate_acquisition((24, 24), 64, 10.0, seed=seed, **kw)


def test_hdf5_round_trip(tmp_path):
    acq = _small(7)
    path = write_ulm_acquisition(tmp_path / "acq.h5", acq)
    back = read_ulm_acquisition(path)
    for name in ("iq", "positions", "frames", "track_ids", "amplitudes"):
        assert torch.equal(getattr(back, name), getattr(acq, name))
    assert back.pixel_size == acq.pixel_size and back.frame_rate == acq.frame_rate
    assert back.metadata == acq.metadata
    assert [p.name for p in tmp_path.iterdir()] == ["acq.h5"]


def test_failed_save_keeps_previous_file(tmp_path):
    acq = _small(7)
    path = write_ulm_acquisition(tmp_path / "acq.h5", acq)
    before = path.read_bytes()
    unserializable = dataclasses.replace(_small(8), metadata={"seed": object()})
    with pytest.raises(TypeError):
        write_ulm_acquisition(path, unserializable)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["acq.h5"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_ulm_acquisition(tmp_path / "missing" / "acq.h5", acq)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_ulm_acquisition(tmp_path / "absent.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_ulm_acquisition(tmp_path / "junk.h5")
    import h5py

    with h5py.File(tmp_path / "partial.h5", "w") as f:
        f["iq"] = np.zeros((2, 4, 4), np.complex64)
    with pytest.raises(ValueError, match="missing dataset /positions"):
        read_ulm_acquisition(tmp_path / "partial.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_ulm_acquisition(tmp_path / "no" / "such" / "dir.h5", _small())


def test_saved_with_the_documented_dtypes(tmp_path):
    acq = _small(7)
    wide = dataclasses.replace(
        acq,
        iq=acq.iq.conj().to(torch.complex128),
        positions=acq.positions.double(),
        amplitudes=acq.amplitudes.double(),
    )
    back = read_ulm_acquisition(write_ulm_acquisition(tmp_path / "acq.h5", wide))
    assert back.iq.dtype == torch.complex64 and torch.equal(back.iq, acq.iq.conj())
    assert back.positions.dtype == torch.float32 and torch.equal(back.positions, acq.positions)
    assert back.amplitudes.dtype == torch.float32


def test_iq_alone_is_read_without_a_ground_truth(tmp_path):
    import h5py

    iq = (np.arange(2 * 4 * 8) * (1 + 2j)).reshape(2, 4, 8).astype(np.complex64)
    with h5py.File(tmp_path / "measured.h5", "w") as f:
        f["iq"] = iq
        f.attrs.update(pixel_size=[0.5, 0.25], frame_rate=500.0, wavelength=1e-4, metadata="{}")
    acq = read_ulm_iq(tmp_path / "measured.h5")
    np.testing.assert_array_equal(acq.iq.numpy(), iq)
    assert acq.positions.shape == (0, 2) and acq.frames.shape == (0,)
    assert (acq.pixel_size, acq.frame_rate, acq.wavelength) == ((0.5, 0.25), 500.0, 1e-4)
    full = read_ulm_iq(write_ulm_acquisition(tmp_path / "acq.h5", _small()))
    assert len(full.frames) == 0  # the truth is not read
    for bad, message in (
        (np.zeros((2, 4), np.complex64), r"must have shape \(frames, nz, nx\)"),
        (np.zeros((2, 4, 4), np.float32), "must be complex, got float32"),
    ):
        with h5py.File(tmp_path / "bad.h5", "w") as f:
            f["iq"] = bad
        with pytest.raises(ValueError, match=message):
            read_ulm_iq(tmp_path / "bad.h5")
