"""``blockrecon simulate`` and ``blockrecon recon``: outputs, and bad input refused with exit 2."""

from __future__ import annotations

import re
import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from blockrecon.cli import main, recon
from blockrecon.inference import NORMALIZATION, reconstruct_with_model
from blockrecon.io import read_acquisition, write_ismrmrd
from blockrecon.models import build_unrolled, load_model, save_model
from blockrecon.physics import Sense

SHAPE = (16, 16, 16)
COILS = 2


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A simulated 16^3, 2-coil radial scan written by ``blockrecon simulate``."""
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    code = main(
        [
            "simulate",
            "--out",
            str(path),
            "--shape",
            *map(str, SHAPE),
            "--coils",
            str(COILS),
            "--spokes",
            "120",
            "--snr",
            "40",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An (untrained) tiny unrolled network saved as a model file."""
    config = {"regularizer": {"width": 4, "n_layers": 2}, "n_unrolls": 2, "patch_size": 8}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, build_unrolled(config), config, {"data_normalization": NORMALIZATION})
    return path


def test_simulate_writes_reference_image_and_true_maps(scan):
    acq = read_acquisition(scan)
    assert acq.image_shape == SHAPE and acq.num_coils == COILS
    assert acq.image is not None and acq.maps is not None
    assert torch.allclose((acq.maps.abs() ** 2).sum(0), torch.ones(SHAPE), atol=1e-4)
    assert acq.kspace.shape == (COILS, 120, 32)


def test_recon_writes_nifti_with_voxel_size_and_reports_quality(scan, tmp_path, capsys):
    out = tmp_path / "cg.nii.gz"
    assert (
        main(["recon", str(scan), "--method", "cg", "--iterations", "10", "--out", str(out)]) == 0
    )
    psnr_db = float(capsys.readouterr().out.split("PSNR")[1].split("dB")[0])
    assert psnr_db > 20  # CG-SENSE of a 120-spoke scan recovers the phantom
    image = nib.load(out)
    assert image.shape == SHAPE[::-1] and np.allclose(image.header.get_zooms(), 1.0)


def _recon_mbdl(scan, model, out, *options) -> np.ndarray:
    """``recon --method mbdl`` into an HDF5 file; its complex image."""
    assert (
        main(
            [
                "recon",
                str(scan),
                "--method",
                "mbdl",
                "--model",
                str(model),
                *options,
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    with h5py.File(out) as handle:
        return handle["image"][()]


def _cg_image(scan, out, backend: str) -> np.ndarray:
    """The complex image ``recon --method cg --iterations 10 --backend BACKEND`` writes."""
    options = ["--method", "cg", "--iterations", "10", "--backend", backend, "--no-progress"]
    assert main(["recon", str(scan), *options, "--out", str(out)]) == 0
    with h5py.File(out) as handle:
        return handle["image"][()]


@pytest.mark.parametrize("backend", ["finufft", "sigpy"])
def test_recon_names_its_backend_and_every_backend_gives_the_same_image(
    backend, scan, tmp_path, capsys
):
    image = _cg_image(scan, tmp_path / f"{backend}.h5", backend)
    assert f"NUFFT backend: {backend} (cpu)" in capsys.readouterr().err
    reference = _cg_image(scan, tmp_path / "dft.h5", "dft")
    assert np.linalg.norm(image - reference) / np.linalg.norm(reference) < 1e-3


def test_recon_refuses_a_backend_that_cannot_run_here(scan, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "x.h5"
    assert (
        main(["recon", str(scan), "--method", "cg", "--backend", "cufinufft", "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cufinufft' is not installed" in err[0]
    assert not out.exists()


def test_recon_mbdl_blockwise_equals_full_volume_and_writes_hdf5(scan, model_file, tmp_path):
    outputs = {
        patch: _recon_mbdl(scan, model_file, tmp_path / f"mbdl{patch}.h5", "--patch", patch)
        for patch in ("8", "16")
    }
    assert outputs["8"].shape == SHAPE and np.iscomplexobj(outputs["8"])
    assert np.abs(outputs["8"] - outputs["16"]).max() <= 1e-5 * np.abs(outputs["16"]).max()


def test_recon_mbdl_iterations_set_the_cg_data_consistency(scan, tmp_path):
    config = {
        "regularizer": {"width": 2, "n_layers": 2},
        "dc": {"kind": "cg", "n_iter": 2},
        "n_unrolls": 1,
        "patch_size": 8,
    }
    torch.manual_seed(0)
    path = tmp_path / "cg.pt"
    save_model(path, build_unrolled(config), config, {"data_normalization": NORMALIZATION})
    acq = read_acquisition(scan)
    outputs = {
        n: torch.from_numpy(_recon_mbdl(scan, path, tmp_path / f"mbdl{n}.h5", "--iterations", n))
        for n in ("2", "5")
    }
    model = load_model(path, overrides={"dc": {**config["dc"], "n_iter": 5}}).model
    expected = reconstruct_with_model(
        model, acq.kspace, acq.maps, acq.coord, {"data_normalization": NORMALIZATION}
    )
    assert (outputs["5"] - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert (outputs["5"] - outputs["2"]).abs().max() > 1e-3 * expected.abs().max()


def test_recon_mbdl_reads_input_and_model_once_and_computes_the_adjoint_once(
    scan, model_file, tmp_path, monkeypatch
):
    counts = {"scan": 0, "model": 0, "adjoint": 0}

    def counted(name, function):
        def call(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(recon, "read_scan", counted("scan", recon.read_scan))
    monkeypatch.setattr(torch, "load", counted("model", torch.load))
    monkeypatch.setattr(Sense, "adjoint", counted("adjoint", Sense.adjoint))
    _recon_mbdl(scan, model_file, tmp_path / "mbdl.h5", "--patch", "8")
    assert counts == {"scan": 1, "model": 1, "adjoint": 1}


def _rewrite(source, target, edit):
    shutil.copy(source, target)
    with h5py.File(target, "r+") as handle:
        edit(handle)
    return target


def _replace(name, value):
    def edit(handle):
        del handle[name]
        handle[name] = value

    return edit


def _bad_files(scan, folder):
    """(input path, extra arguments, expected message) for each kind of bad input."""
    with h5py.File(scan) as handle:
        kspace, coord = handle["kspace"][()], handle["coord"][()]
    text = folder / "notes.h5"
    text.write_text("not an HDF5 file")
    truncated = folder / "truncated.h5"
    truncated.write_bytes(scan.read_bytes()[: scan.stat().st_size // 2])
    nan = kspace.copy()
    nan[0, 0, 0] = np.nan
    maps3 = folder / "maps3.h5"
    with h5py.File(maps3, "w") as handle:
        handle["maps"] = np.ones((3, *SHAPE), np.complex64) / np.sqrt(3)
    return [
        (folder / "absent.h5", [], "not found"),
        (text, [], "not an HDF5 file"),
        (truncated, [], "truncated|corrupt"),
        (
            _rewrite(scan, folder / "nocoord.h5", lambda h: h.__delitem__("coord")),
            [],
            "missing dataset 'coord'",
        ),
        (_rewrite(scan, folder / "real.h5", _replace("kspace", kspace.real)), [], "kspace"),
        (_rewrite(scan, folder / "shape.h5", _replace("coord", coord[..., :2])), [], "coord"),
        (
            _rewrite(scan, folder / "range.h5", _replace("coord", coord * 3)),
            [],
            r"coord\[\.\.\., \d\] must lie",
        ),
        (_rewrite(scan, folder / "nan.h5", _replace("kspace", nan)), [], "NaN|Inf|finite"),
        (scan, ["--maps", str(maps3)], "coil"),
    ]


def test_bad_input_exits_2_with_one_line_and_no_output(scan, tmp_path, capsys):
    for path, extra, message in _bad_files(scan, tmp_path):
        out = tmp_path / "out.nii.gz"
        before = set(tmp_path.iterdir())
        code = main(["recon", str(path), "--method", "grid", "--out", str(out), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2, (path.name, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert re.search(message, err), (path.name, err)
        assert set(tmp_path.iterdir()) == before  # nothing written, no partial file


def test_bad_models_and_patches_exit_2(scan, model_file, tmp_path, capsys):
    other = tmp_path / "other.pt"
    payload = torch.load(model_file, weights_only=True)
    payload["config"]["regularizer"]["width"] = 8  # weights of width 4, config of width 8
    torch.save(payload, other)
    unet_config = {
        "regularizer": {"kind": "unet", "base_width": 2, "depth": 2},
        "n_unrolls": 1,
        "patch_size": 8,
    }
    unet = tmp_path / "unet.pt"
    save_model(unet, build_unrolled(unet_config), unet_config)
    cases = [
        (["--model", str(other)], "width|shape"),
        (["--model", str(model_file), "--patch", "32"], "larger than the volume"),
        (["--model", str(unet), "--patch", "7"], "stride"),
        (["--model", str(scan)], "model file"),
        (["--model", str(model_file), "--iterations", "3"], "CG data-consistency"),
    ]
    for extra, message in cases:
        out = tmp_path / "out.h5"
        code = main(["recon", str(scan), "--method", "mbdl", *extra, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, (extra, err)
        assert re.search(message, err), err
        assert not out.exists()


def test_ismrmrd_input_is_detected_by_content_and_takes_maps_from_a_file(scan, tmp_path):
    mrd = tmp_path / "raw.data"  # no telling extension
    write_ismrmrd(mrd, read_acquisition(scan))
    out = tmp_path / "grid.nii"
    assert (
        main(["recon", str(mrd), "--method", "grid", "--maps", str(scan), "--out", str(out)]) == 0
    )
    assert nib.load(out).shape == SHAPE[::-1]


@pytest.mark.slow
def test_maps_are_estimated_when_the_input_has_none(scan, tmp_path, capsys):
    mrd = tmp_path / "raw.mrd"  # ISMRMRD holds no coil maps
    write_ismrmrd(mrd, read_acquisition(scan))
    out = tmp_path / "cg.nii.gz"
    assert main(["recon", str(mrd), "--method", "cg", "--iterations", "10", "--out", str(out)]) == 0
    assert "Estimating coil maps" in capsys.readouterr().err
    assert nib.load(out).shape == SHAPE[::-1]


def test_simulate_refuses_bad_arguments(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "a.txt")]) == 2
    assert main(["simulate", "--out", str(tmp_path / "a.h5"), "--coils", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def scan32(tmp_path_factory):
    """A simulated 32^3, 8-coil scan at the default sampling (8x undersampled radial, 2x
    readout oversampling) written by ``blockrecon simulate``."""
    path = tmp_path_factory.mktemp("scan32") / "scan.h5"
    assert main(["simulate", "--out", str(path), "--shape", "32", "32", "32", "--snr", "30"]) == 0
    return path


def _recon_psnr(scan, out, capsys, method, *options) -> float:
    """PSNR printed by ``recon --method METHOD`` (FINUFFT) of ``scan`` with ``options``."""
    assert (
        main(
            [
                "recon",
                str(scan),
                "--method",
                method,
                "--backend",
                "finufft",
                "--out",
                str(out),
                "--no-progress",
                *options,
            ]
        )
        == 0
    )
    return float(capsys.readouterr().out.split("PSNR")[1].split("dB")[0])


@pytest.mark.parametrize("method", ["cg", "mbdl"])
def test_estimated_maps_reconstruct_like_the_true_maps(method, scan32, tmp_path, capsys):
    """Also for the network, trained on real-valued objects with true maps: estimated maps carry
    the object's phase (without it, MBDL lost 8 dB here)."""
    true_maps = _recon_psnr(scan32, tmp_path / "true.h5", capsys, method)
    estimated = _recon_psnr(scan32, tmp_path / "estimated.h5", capsys, method, "--maps", "estimate")
    assert estimated > true_maps - 1


def test_implausible_estimated_maps_warn_in_one_line(scan32, tmp_path, capsys):
    assert (
        main(
            [
                "recon",
                str(scan32),
                "--method",
                "grid",
                "--maps",
                "estimate",
                "--calib-width",
                "4",
                "--out",
                str(tmp_path / "grid.h5"),
                "--no-progress",
            ]
        )
        == 0
    )
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "calibration width 4" in warnings[0], warnings
    assert warnings[0].startswith("blockrecon recon: warning: espirit coil maps")


@pytest.mark.parametrize(
    "width, message",
    [("3", "at least 4"), ("x", "integer"), ("17", "exceeds the smallest image size 16")],
)
def test_bad_calib_width_exits_2_with_one_line(scan, tmp_path, capsys, width, message):
    out = tmp_path / "out.h5"
    try:
        code = main(
            [
                "recon",
                str(scan),
                "--method",
                "grid",
                "--maps",
                "estimate",
                "--calib-width",
                width,
                "--out",
                str(out),
            ]
        )
    except SystemExit as stop:  # refused by the argument parser
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()
