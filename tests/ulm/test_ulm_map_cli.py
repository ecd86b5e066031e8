"""``blockrecon ulm map``: a network trained here for a few steps maps a simulated acquisition;
the NIfTI files hold the fine grid with its voxel size, the density counts every interpolated
track point, the MIP is written, and every bad input exits 2 with one line and writes nothing.
``ulm evaluate`` and ``ulm train`` refuse the same mismatches before any work."""

import json

import h5py
import nibabel as nib
import numpy as np
import pytest

from blockrecon.cli import main
from blockrecon.io.ulm import read_ulm_acquisition, read_ulm_iq
from blockrecon.ulm import conventional_ulm
from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.evaluation import detect_bubbles, score_detections
from blockrecon.ulm.maps import track_maps
from blockrecon.ulm.nets import UlmNetConfig
from blockrecon.ulm.track import MAX_GAP, MAX_LINKING_DISTANCE, link_tracks
from blockrecon.ulm.training import build_model, load_model, save_model

CLI = ["ulm", "--no-progress"]
MIN_LENGTH = "2"  # the few-step network's tracks are short


def _simulate(path, shape, frames, extra=()):
    args = [*CLI, "simulate", "--out", str(path), "--shape", *map(str, shape)]
    settings = ["--frames", str(frames), "--concentration", "6", "--seed", "1"]
    assert main([*args, *settings, *extra]) == 0
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2D acquisition, a dense network trained on it for 20 steps, a 3D acquisition and an
    untrained 3D model file."""
    folder = tmp_path_factory.mktemp("ulm_map")
    data = _simulate(folder / "acq.h5", (8, 8), 32)
    model = folder / "m.pt"
    train = ["train", "--data", str(data), "--out", str(model), "--kind", "dense"]
    settings = ["--steps", "20", "--lr", "2e-2", "--batch", "2", "--channels", "4", "4", "4"]
    assert main([*CLI, *train, *settings, "--fine-channels", "4"]) == 0
    data3d = _simulate(folder / "acq3d.h5", (4, 4, 4), 16)
    model3d = folder / "m3d.pt"
    save_model(model3d, build_model("dense", UlmNetConfig(3, (2, 2, 2), 2)))
    return {"data": data, "model": model, "data3d": data3d, "model3d": model3d}


def _track_points(positions, frames, ids, step):
    """Interpolated points of the kept tracks: per track one point per detection step of at
    most ``step`` lambda, plus its last detection (see blockrecon.ulm.maps)."""
    total = 0
    for track in np.unique(ids[ids >= 0]):
        mine = ids == track
        pos = positions[mine][np.argsort(frames[mine])]
        lengths = np.linalg.norm(np.diff(pos, axis=0), axis=1)
        total += 1 + int(np.maximum(1, np.ceil(lengths / step)).sum())
    return total


@pytest.mark.parametrize("factor", [4, 8])
def test_map_writes_the_fine_grid_and_counts_every_track_point(files, tmp_path, factor):
    out, mip = tmp_path / "map.nii.gz", tmp_path / "map.png"
    args = ["map", "--model", str(files["model"]), "--data", str(files["data"]), "--out", str(out)]
    extra = ["--velocity", "--mip", str(mip), "--fine-factor", str(factor)]
    assert main([*CLI, *args, *extra, "--min-length", MIN_LENGTH]) == 0
    acq = read_ulm_iq(files["data"])
    fine = acq.pixel_size[0] / factor  # lambda
    density = nib.load(out)
    assert density.shape == (8 * factor, 1, 8 * factor)  # (x, y, z): depth along z, 2D -> y = 1
    np.testing.assert_allclose(density.header.get_zooms(), [fine * acq.wavelength * 1e3] * 3)
    assert density.header.get_xyzt_units()[0] == "mm"

    # The same detections and tracks, independently of the command.
    model = load_model(files["model"]).model
    positions, frames = detect_bubbles(model, acquisition_blocks(acq, 16), progress=False)
    ids = link_tracks(positions, frames, MAX_LINKING_DISTANCE, max_gap=MAX_GAP, min_length=2)
    assert (ids >= 0).sum() > 20  # the network found tracks to draw
    counts = np.asarray(density.dataobj)
    expected = _track_points(positions.double().numpy(), frames.numpy(), ids.numpy(), fine / 2)
    assert counts.sum() == expected
    maps = track_maps(
        positions, frames, ids, (8, 8), acq.pixel_size, acq.frame_rate, upsampling=factor
    )
    np.testing.assert_array_equal(counts[:, 0, :], maps.density.numpy().T)

    velocity = nib.load(tmp_path / "map_velocity.nii.gz")
    assert velocity.shape == (8 * factor, 1, 8 * factor, 1, 3)
    assert velocity.header.get_intent()[0] == "vector"
    vectors = np.asarray(velocity.dataobj)[:, 0, :, 0, :]  # (x, z, (vx, vy, vz)) mm/s
    np.testing.assert_array_equal(vectors[..., 1], 0.0)  # no elevation in 2D
    np.testing.assert_allclose(
        np.linalg.norm(vectors, axis=-1), maps.speed.numpy().T * acq.wavelength * 1e3, rtol=1e-5
    )
    assert mip.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_map_failing_on_its_last_file_leaves_no_output(files, tmp_path, monkeypatch, capsys):
    """The density, velocity and MIP are one output: the MIP writer failing after the NIfTI
    files were written leaves none of them, and no temporary file."""
    import blockrecon.io.ulm_maps as ulm_maps

    def broken_png(path, *args, **kwargs):
        raise OSError("disk full while writing the PNG")

    monkeypatch.setattr(ulm_maps, "write_mip_png", broken_png)
    out, mip = tmp_path / "map.nii.gz", tmp_path / "map.png"
    args = ["map", "--model", str(files["model"]), "--data", str(files["data"]), "--out", str(out)]
    assert main([*CLI, *args, "--velocity", "--mip", str(mip)]) != 0
    assert "disk full" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _write_iq(path, iq):
    with h5py.File(path, "w") as f:
        f["iq"] = iq
        f.attrs["pixel_size"] = [0.5, 0.5]
        f.attrs["frame_rate"] = 1000.0
        f.attrs["wavelength"] = 1e-4
        f.attrs["metadata"] = "{}"
    return path


BAD_MAPS = [
    (["--data", "{tmp}/flat.h5"], "must have shape (frames, nz, nx)"),
    (["--data", "{tmp}/real.h5"], "/iq must be complex, got float32"),
    (["--block-frames", "64"], "a block of 64 frames is longer than"),
    (["--block-frames", "8"], "must be a multiple of 16"),
    (["--data", "{data3d}"], "is 3D but the model is 2D"),
    (["--model", "{model3d}"], "is 2D but the model is 3D"),
    (["--fine-factor", "3"], "--fine-factor 3 must divide the network's 8x grid"),
    (["--fine-factor", "16"], "--fine-factor 16 must divide"),
    (["--model", "{tmp}/missing.pt"], "does not exist"),
    (["--model", "{data}"], "not a ULM model file"),
    (["--out", "{tmp}/no/map.nii.gz"], "does not exist"),
    (["--out", "{tmp}/read-only/map.nii.gz"], "cannot write"),
    (["--out", "{tmp}/map.txt"], "must end in .nii or .nii.gz"),
    (["--mip", "{tmp}/map.jpg"], "must end in .png"),
    (["--mip", "{tmp}/read-only/map.png"], "cannot write"),
    (["--method", "conventional"], "--model is for --method network"),
]


@pytest.mark.parametrize("change, message", BAD_MAPS)
def test_bad_map_input_exits_2_and_writes_nothing(
    files, tmp_path, read_only_folder, capsys, change, message
):
    _write_iq(tmp_path / "flat.h5", np.zeros((2, 8), np.complex64))
    _write_iq(tmp_path / "real.h5", np.zeros((32, 8, 8), np.float32))
    before = set(tmp_path.rglob("*"))
    options = {
        "--model": str(files["model"]),
        "--data": str(files["data"]),
        "--out": str(tmp_path / "out.nii.gz"),
        "--mip": str(tmp_path / "out.png"),
    }
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    for option, value in zip(change[::2], change[1::2], strict=True):
        options[option] = value.format(**names)
    args = [a for pair in options.items() for a in pair]
    assert main([*CLI, "map", *args, "--velocity"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    "command, message",
    [
        (["evaluate", "--data", "{data3d}", "--model", "{model}"], "is 3D but the model is 2D"),
        (["evaluate", "--data", "{data}", "--model", "{model3d}"], "is 2D but the model is 3D"),
        (
            ["evaluate", "--data", "{data}", "--model", "{model}", "--block-frames", "64"],
            "is longer than",
        ),
        (
            ["evaluate", "--data", "{data}", "--model", "{model}", "--json", "{tmp}/no/s.json"],
            "--json folder",
        ),
        (
            ["train", "--data", "{data}", "{data3d}", "--out", "{tmp}/m.pt", "--steps", "1"],
            "is 3D but the model is 2D",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/m.pt", "--block-frames", "48"],
            "a block of 48 frames is longer than",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/m.pt", "--kind", "dense"]
            + ["--init", "{model3d}"],
            "is 2D but the model is 3D",
        ),
        (["train", "--data", "{data}", "--out", "{tmp}/read-only/m.pt"], "cannot write"),
    ],
)
def test_evaluate_and_train_refuse_the_same_mismatches(
    files, tmp_path, read_only_folder, capsys, command, message
):
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    before = set(tmp_path.rglob("*"))
    assert main([*CLI, *[a.format(**names) for a in command]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(tmp_path.rglob("*")) == before


def test_evaluate_writes_palas_scores(files, tmp_path):
    canals = _simulate(tmp_path / "canals.h5", (8, 16), 32, ["--phantom", "canals"])
    out = tmp_path / "s.json"
    args = ["evaluate", "--data", str(canals), "--model", str(files["model"]), "--json", str(out)]
    assert main([*CLI, *args]) == 0
    scores = json.loads(out.read_text())
    pala = scores["pala"]
    assert pala["jaccard"] == scores["jaccard"] and pala["recall"] == scores["recall"]
    assert 0 <= pala["saturation"] <= 1 and "gap" in pala["components"]
    weights = {"rmse": 2, "jaccard": 2, "precision": 1, "gap": 1, "saturation": 1}
    parts = pala["components"]
    by_hand = 100 * sum(weights[k] * v for k, v in parts.items()) / sum(weights[k] for k in parts)
    assert pala["global_score"] == pytest.approx(by_hand)


def test_conventional_map_is_conventional_ulms_localizations_tracked(files, tmp_path):
    """``--method conventional`` needs no model: its density is that of conventional ULM's
    localizations, tracked and accumulated as the network's are."""
    out = tmp_path / "map.nii.gz"
    args = ["map", "--method", "conventional", "--data", str(files["data"]), "--out", str(out)]
    assert main([*CLI, *args, "--min-length", MIN_LENGTH, "--fine-factor", "4"]) == 0
    acq = read_ulm_iq(files["data"])
    found = conventional_ulm(acq.iq, acq.pixel_size, acq.frame_rate)
    ids = link_tracks(
        found.positions, found.frames, MAX_LINKING_DISTANCE, max_gap=MAX_GAP, min_length=2
    )
    assert (ids >= 0).sum() > 20
    maps = track_maps(
        found.positions, found.frames, ids, (8, 8), acq.pixel_size, acq.frame_rate, upsampling=4
    )
    counts = np.asarray(nib.load(out).dataobj)
    np.testing.assert_array_equal(counts[:, 0, :], maps.density.numpy().T)


def test_evaluate_scores_conventional_ulm_without_a_model(files, tmp_path):
    out = tmp_path / "s.json"
    args = ["evaluate", "--method", "conventional", "--data", str(files["data"])]
    assert main([*CLI, *args, "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    acq = read_ulm_acquisition(files["data"])
    found = conventional_ulm(acq.iq, acq.pixel_size, acq.frame_rate)
    expected, _ = score_detections(acq, found.positions, found.frames)
    assert (scores["method"], scores["model"]) == ("conventional", None)
    assert scores["jaccard"] == expected.jaccard and scores["rmse"] == expected.rmse


def _held_out_rows(network, conventional, concentrations=(10.0, 400.0, 1600.0)):
    rows = []
    for c, net, conv in zip(concentrations, network, conventional, strict=True):
        common = {"concentration": c, "precision": 0.5, "recall": 0.5}
        rows += [{"method": "network", "jaccard": net, **common}]
        rows += [{"method": "conventional", "jaccard": conv, **common}]
    return rows


@pytest.mark.parametrize(
    "network, warned",
    [((0.1, 0.1, 0.9), True), ((0.9, 0.9, 0.9), False)],
    ids=["conventional-better-here", "network-better-everywhere"],
)
def test_map_warns_where_the_models_held_out_table_favours_conventional_ulm(
    files, tmp_path, capsys, network, warned
):
    """A model file carrying a held-out table (as the shipped ones do): the density of its
    detections (the few-step network makes about 120 per frame on the 8x8 field: between the
    table's 10 and 400 at precision = recall) is compared with the table's crossing."""
    model = tmp_path / "m.pt"
    table = {"held_out": {"rows": _held_out_rows(network, (0.5, 0.5, 0.5))}}
    save_model(model, load_model(files["model"]).model, {**table, "settings": {"shape": [8, 8]}})
    out = tmp_path / "map.nii.gz"
    args = ["map", "--model", str(model), "--data", str(files["data"]), "--out", str(out)]
    assert main([*CLI, *args, "--min-length", MIN_LENGTH]) == 0
    err = capsys.readouterr().err
    assert ("--method conventional may give the better map" in err) == warned
    if warned:
        assert "only from about 1000.0 bubbles/frame" in err  # lead -0.4 at 400, +0.4 at 1600
