"""``blockrecon train --self-supervised`` on scans without reference images, and its refusals."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import h5py
import pytest
import torch

from blockrecon.cli import main
from blockrecon.io import write_acquisition, write_ismrmrd
from blockrecon.physics import radial_3d, simulate_acquisition
from blockrecon.recon import psnr
from blockrecon.train.checkpoint import load_checkpoint

SMALL_NET = ["--width", "4", "--layers", "2", "--unrolls", "2", "--patch", "8", "--no-progress"]


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory):
    """Two 16^3 scans with 2 coils and neither reference images nor maps."""
    folder = tmp_path_factory.mktemp("raw")
    for i in range(2):
        acq = simulate_acquisition(radial_3d(60, 16), (16, 16, 16), n_coils=2, snr_db=40, seed=i)
        write_acquisition(folder / f"scan{i}.h5", replace(acq, image=None, maps=None))
    return folder


def _exit_code(argv: list[str]) -> int:
    """``main(argv)``, or the code argparse exits with on a usage error."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


def _train(folder, out, *options) -> int:
    return _exit_code(["train", "--data", str(folder), "--out", str(out), *SMALL_NET, *options])


def test_files_without_images_train_self_supervised_only(raw_folder, tmp_path, capsys):
    assert _train(raw_folder, tmp_path / "supervised", "--epochs", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no reference image" in err[0] and "self-supervised" in err[0]
    assert not (tmp_path / "supervised").exists()

    run = tmp_path / "ssdu"
    options = ["--self-supervised", "--splits", "2", "--val", "1", "--epochs", "1"]
    assert _train(raw_folder, run, *options) == 0
    err = capsys.readouterr().err
    assert "training data" in err and "kept in memory" in err
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["batches"] == 2 and "val_loss" in record and "val_psnr_db" not in record
    assert record["data_bytes_kept"] > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--loss-fraction", "1.5"], r"must lie in \(0, 1\)"),
        (["--loss-fraction", "0"], r"must lie in \(0, 1\)"),
        (["--loss-fraction", "0.001"], "scan0.h5: a loss fraction of 0.001"),
        (["--compress-coils", "3"], "3 virtual coils exceed its 2 coils"),
        (["--data-memory", "-1"], "must be a finite number >= 0"),
        (["--splits", "0"], "must be"),
    ],
)
def test_bad_self_supervised_settings_exit_2_and_write_nothing(
    raw_folder, tmp_path, capsys, options, message
):
    run = tmp_path / "run"
    assert _train(raw_folder, run, "--self-supervised", *options) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not run.exists()


@pytest.mark.parametrize("option", [["--loss-fraction", "0.3"], ["--splits", "2"]])
def test_split_options_without_self_supervised_exit_2(raw_folder, tmp_path, capsys, option):
    assert _train(raw_folder, tmp_path / "run", *option) == 2
    assert "applies only to --self-supervised" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_simulated_spokes_too_few_to_split_exit_2(tmp_path, capsys):
    options = ["--simulate", "1", "--size", "8", "--spokes", "2", "--coils", "1"]
    command = ["train", *options, "--self-supervised", "--loss-fraction", "0.1"]
    assert main([*command, "--out", str(tmp_path / "run"), *SMALL_NET]) == 2
    assert "leaves an empty" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["finufft", "sigpy"])
def test_ismrmrd_32_channels_trains_self_supervised_compressed_and_beats_gridding(
    tmp_path, backend
):
    """32-channel ISMRMRD files without maps: SSDU training on 8 virtual coils, then MBDL, on
    each CPU NUFFT backend."""
    shape = (16, 16, 16)
    data, truth = tmp_path / "data", {}
    data.mkdir()
    for i in range(2):
        acq = simulate_acquisition(radial_3d(80, 16), shape, n_coils=32, snr_db=35, seed=i)
        truth[i] = acq.image
        write_ismrmrd(data / f"scan{i}.mrd", acq)
    run = tmp_path / "run"
    options = ["--self-supervised", "--splits", "2", "--compress-coils", "8", "--dc", "cg"]
    options += ["--backend", backend]
    wider = ["--width", "8", "--layers", "3", "--epochs", "6", "--lr", "3e-3"]
    assert _train(data, run, *options, *wider) == 0
    images = {}
    for method, extra in (("grid", []), ("mbdl", ["--model", str(run / "model.pt")])):
        out = tmp_path / f"{method}.h5"
        command = ["recon", str(data / "scan1.mrd"), "--method", method, "--out", str(out)]
        command += ["--compress-coils", "8", "--backend", backend, "--no-progress"]
        assert main([*command, *extra]) == 0
        with h5py.File(out) as f:
            images[method] = torch.from_numpy(f["image"][()])
    grid, mbdl = (psnr(images[m], truth[1]) for m in ("grid", "mbdl"))
    assert mbdl > grid + 1, (mbdl, grid)


def test_simulated_angiography_trains_self_supervised_with_validation_psnr(tmp_path):
    run = tmp_path / "run"
    options = ["--simulate", "2", "--phantom", "angio", "--size", "16", "--spokes", "40"]
    options += ["--coils", "2", "--val", "1", "--epochs", "1", "--self-supervised"]
    assert _exit_code(["train", *options, "--out", str(run), *SMALL_NET]) == 0
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_psnr_db"] > 0 and record["val_loss"] > 0  # simulated: a truth to score
    settings = load_checkpoint(run / "checkpoint.pt")["settings"]
    assert settings["data"]["phantom"] == "angio"
    assert settings["objective"]["objective"] == "self_supervised"
