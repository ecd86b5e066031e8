"""``--compress-coils`` of ``recon`` and ``train``: virtual coils reconstruct and train, all
coils change nothing, a bad count exits 2 with one line before any work."""

from __future__ import annotations

import re
from dataclasses import replace

import h5py
import numpy as np
import pytest

from blockrecon.cli import main
from blockrecon.io import write_acquisition
from blockrecon.physics import radial_3d, simulate_acquisition

COILS = 4
TRAIN = ["--epochs", "1", "--width", "4", "--layers", "2", "--unrolls", "1", "--patch", "8"]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A simulated 16^3, 4-coil radial scan with its true maps."""
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    acq = simulate_acquisition(radial_3d(240, 32, image_size=16), (16,) * 3, n_coils=COILS)
    write_acquisition(path, replace(acq, snr_db=None))
    return path


def _recon(scan, out, capsys, *options) -> tuple[np.ndarray, float]:
    args = ["recon", str(scan), "--method", "cg", "--out", str(out), "--no-progress", *options]
    assert main(args) == 0
    psnr = float(re.search(r"PSNR (\S+) dB", capsys.readouterr().out).group(1))
    with h5py.File(out) as handle:
        return handle["image"][()], psnr


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"blockrecon {command}: error: "), err
    return err[0]


def test_recon_with_all_coils_changes_nothing_and_with_fewer_still_works(scan, tmp_path, capsys):
    plain, plain_psnr = _recon(scan, tmp_path / "plain.h5", capsys)
    same, _ = _recon(scan, tmp_path / "same.h5", capsys, "--compress-coils", str(COILS))
    np.testing.assert_allclose(same, plain, atol=1e-3 * np.abs(plain).max())
    _, fewer_psnr = _recon(scan, tmp_path / "fewer.h5", capsys, "--compress-coils", "3")
    assert fewer_psnr > plain_psnr - 1.0, (plain_psnr, fewer_psnr)


def test_recon_estimates_maps_on_the_virtual_coils(scan, tmp_path, capsys):
    options = ("--maps", "estimate", "--compress-coils", "2")
    _, psnr = _recon(scan, tmp_path / "estimated.h5", capsys, *options)
    assert psnr > 20, psnr


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_recon_refuses_a_count_that_is_not_positive(scan, tmp_path, capsys, count):
    args = ["recon", str(scan), "--method", "cg", "--out", str(tmp_path / "x.h5")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--compress-coils", count])
    assert exit_info.value.code == 2
    assert "--compress-coils" in _one_error_line(capsys, "recon")


def test_recon_refuses_more_virtual_coils_than_coils(scan, tmp_path, capsys):
    out = tmp_path / "x.h5"
    code = main(["recon", str(scan), "--method", "cg", "--out", str(out), "--compress-coils", "5"])
    assert code == 2 and not out.exists()
    assert "--compress-coils 5 exceeds the 4 coils" in _one_error_line(capsys, "recon")


def test_train_on_virtual_coils_of_simulated_scans(tmp_path, capsys):
    run = tmp_path / "run"
    simulated = ["--simulate", "1", "--size", "16", "--spokes", "60", "--coils", "4"]
    args = ["train", *simulated, *TRAIN, "--no-progress"]
    assert main([*args, "--out", str(run), "--compress-coils", "2"]) == 0
    assert (run / "model.pt").exists()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "--compress-coils", "5"]) == 2
    assert "--compress-coils 5 exceeds the 4 coils" in _one_error_line(capsys, "train")
    assert not (tmp_path / "bad").exists()


def test_train_refuses_more_virtual_coils_than_a_file_has(scan, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "scan.h5").write_bytes(scan.read_bytes())
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(run), *TRAIN, "--compress-coils", "6"])
    assert code == 2 and not run.exists()
    assert "6 virtual coils exceed its 4 coils" in _one_error_line(capsys, "train")
