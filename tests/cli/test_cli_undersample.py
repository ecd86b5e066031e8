"""``blockrecon undersample``: the kept spokes, the reference from all of them, its record, a file
that trains; bad input refused with exit 2 and nothing written."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from blockrecon.cli import main, undersample
from blockrecon.io import read_acquisition, write_acquisition
from blockrecon.physics import Acquisition, kept_spokes
from blockrecon.recon import cg_sense, grid_recon, psnr
from blockrecon.train import AcquisitionFiles, fit

SPOKES = 60


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A simulated 16^3, 2-coil scan of 60 golden-means spokes with maps and the true image."""
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    args = ["simulate", "--out", str(path), "--shape", "16", "16", "16", "--coils", "2"]
    assert main([*args, "--spokes", str(SPOKES), "--snr", "40", "--seed", "1"]) == 0
    return path


def _run(scan, out, *options: str) -> int:
    """The exit code of ``blockrecon undersample`` (argparse's usage errors exit by raising)."""
    try:
        return main(["undersample", str(scan), "--out", str(out), "--no-progress", *options])
    except SystemExit as stop:
        return stop.code


def _attributes(path) -> dict:
    with h5py.File(path, "r") as handle:
        return dict(handle.attrs)


def test_default_keeps_the_golden_prefix_and_the_input_image(scan, tmp_path):
    out = tmp_path / "r4.h5"
    assert _run(scan, out, "--factor", "4") == 0
    full, under = read_acquisition(scan), read_acquisition(out)
    kept = math.ceil(SPOKES / 4)
    assert torch.equal(under.kspace, full.kspace[:, :kept])
    assert torch.equal(under.coord, full.coord[:kept])
    assert torch.equal(under.image, full.image) and torch.equal(under.maps, full.maps)
    attrs = _attributes(out)
    assert attrs["reference_method"] == "input" and attrs["reference_maps"] == "none"
    assert attrs["undersampling_factor"] == 4.0 and attrs["undersampling_order"] == "golden"
    assert attrs["source_spokes"] == SPOKES and attrs["source_file"] == "scan.h5"
    assert np.array_equal(_kept(attrs), np.arange(kept))
    assert "reference_iterations" not in attrs


def _kept(attrs) -> np.ndarray:
    """The kept spokes, from what the file records of how it was made."""
    settings = (attrs["undersampling_factor"], attrs["undersampling_order"])
    return kept_spokes(int(attrs["source_spokes"]), *settings, int(attrs["undersampling_seed"]))


def test_cg_reference_from_all_spokes_beats_gridding_the_kept_ones(scan, tmp_path, capsys):
    out = tmp_path / "r4_cg.h5"
    options = ("--factor", "4", "--order", "random", "--seed", "5", "--reference", "cg")
    assert _run(scan, out, *options) == 0
    assert "Reference against the input's image: PSNR" in capsys.readouterr().out
    full, under = read_acquisition(scan), read_acquisition(out)
    index = kept_spokes(SPOKES, 4, "random", seed=5)
    assert torch.equal(under.kspace, full.kspace[:, index])
    assert torch.equal(under.coord, full.coord[index])
    expected = cg_sense(full.kspace, full.coord, full.maps, n_iter=20, progress=False)
    assert torch.allclose(under.image, expected, atol=1e-5 * expected.abs().max())
    gridded = grid_recon(under.kspace, under.coord, under.maps, progress=False)
    assert psnr(under.image, full.image) > psnr(gridded, full.image) + 6
    attrs = _attributes(out)
    assert attrs["reference_method"] == "cg" and attrs["reference_maps"] == "file"
    assert attrs["reference_iterations"] == 20 and attrs["reference_lamda"] == 0.0
    assert attrs["undersampling_order"] == "random" and attrs["undersampling_seed"] == 5
    assert np.array_equal(_kept(attrs), index.numpy())


def test_output_reads_back_and_trains(scan, tmp_path):
    out = tmp_path / "train" / "r3.h5"
    out.parent.mkdir()
    assert _run(scan, out, "--factor", "3", "--reference", "l1", "--iterations", "5") == 0
    assert _attributes(out)["reference_lamda"] == pytest.approx(1e-2)
    pairs = AcquisitionFiles.from_folder(out.parent)
    pair = pairs[0]
    assert pair.kspace.shape == (2, SPOKES // 3, 32) and pair.target.shape == (16, 16, 16)
    config = {"regularizer": {"width": 2, "n_layers": 2}, "n_unrolls": 1, "patch_size": 8}
    fit(config, pairs, tmp_path / "run", epochs=1, progress=False)
    assert (tmp_path / "run").is_dir()


def test_scan_without_maps_gets_estimated_maps_for_the_reference_only(scan, tmp_path):
    no_maps = tmp_path / "no_maps.h5"
    write_acquisition(no_maps, replace(read_acquisition(scan), maps=None, image=None))
    out = tmp_path / "r2.h5"
    assert _run(no_maps, out, "--factor", "2") == 0
    under = read_acquisition(out)
    assert under.maps is None and under.image is not None
    assert _attributes(out)["reference_method"] == "cg"
    assert _attributes(out)["reference_maps"] == "espirit"


def test_reference_none_stores_no_image(scan, tmp_path):
    out = tmp_path / "none.h5"
    assert _run(scan, out, "--factor", "2", "--reference", "none") == 0
    assert read_acquisition(out).image is None
    assert _attributes(out)["reference_method"] == "none"


def _must_not_run(*args, **kwargs):
    raise AssertionError("reached after the input should have been refused")


def _flat_scan(folder, scan) -> str:
    """A valid acquisition whose coord ``(samples, 3)`` has no spoke axis."""
    acq = read_acquisition(scan)
    flat = Acquisition(
        kspace=acq.kspace.reshape(2, -1), coord=acq.coord.reshape(-1, 3), image_shape=(16,) * 3
    )
    path = folder / "flat.h5"
    write_acquisition(path, flat)
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--factor", "0.5"], "between 1 and the 60 spokes"),
        (["--factor", "61"], "between 1 and the 60 spokes"),
        (["--factor", "nan"], "finite number"),
        (["--factor", "inf"], "finite number"),
        (["--factor", "two"], "invalid float value"),
        (["--factor", "2", "--order", "random", "--seed", "-1"], "seed must be an int >= 0"),
        (["--factor", "2", "--iterations", "5"], "apply to a cg or l1 reference"),
        (["--factor", "2", "--reference", "cg", "--iterations", "0"], "must be positive"),
        (["--factor", "2", "--calib-width", "20"], "--calib-width 20 exceeds"),
        (["--factor", "2", "--reference", "linear"], "invalid choice"),
        pytest.param(
            ["--factor", "2", "--reference", "cg", "--device", "cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(
    scan, tmp_path, capsys, monkeypatch, options, message
):
    monkeypatch.setattr(undersample, "reconstruct", _must_not_run)
    out = tmp_path / "out.h5"
    assert _run(scan, out, *options) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(error) == 1 and message in error[0], error
    assert list(tmp_path.iterdir()) == []


def test_bad_files_and_outputs_exit_2_and_write_nothing(scan, tmp_path, capsys, read_only_folder):
    folder = tmp_path / "work"
    folder.mkdir()
    copy = folder / "scan.h5"
    shutil.copy(scan, copy)
    flat = _flat_scan(folder, scan)
    taken = folder / "taken.h5"
    taken.mkdir()
    cases = [
        ([str(copy), "--out", str(folder / "missing" / "o.h5")], "folder"),
        ([str(copy), "--out", str(taken)], "is a folder"),
        ([str(copy), "--out", str(folder / "o.nii")], "must end in .h5"),
        ([str(copy), "--out", str(read_only_folder / "o.h5")], "cannot write"),
        ([str(copy), "--out", str(copy)], "is the input file"),
        ([str(folder / "absent.h5"), "--out", str(folder / "o.h5")], "not found"),
        ([flat, "--out", str(folder / "o.h5")], "needs a spoke axis"),
    ]
    before = sorted(folder.iterdir())
    original = copy.read_bytes()
    for arguments, message in cases:
        code = _run(arguments[0], *arguments[2:], "--factor", "2")
        error = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert code == 2 and len(error) == 1 and message in error[0], (arguments, error)
        assert sorted(folder.iterdir()) == before and list(read_only_folder.iterdir()) == []
    assert copy.read_bytes() == original
