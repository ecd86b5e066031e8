"""The shipped ULM networks: ``scripts/train_ulm_models.py --quick`` writes loadable model files
whose metadata holds the settings and the held-out scores it measured; the loader finds them and
refuses missing or foreign files; ``ulm evaluate`` and ``ulm map`` without ``--model`` run the
shipped network of the data's dimensionality (here the quick run's files, put in the shipped
place), exactly as with ``--model`` naming that file."""

import configparser
import importlib.util
import json
from dataclasses import asdict
from fnmatch import fnmatch
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from blockrecon.cli import main
from blockrecon.ulm import conventional_ulm, simulate_acquisition
from blockrecon.ulm import pretrained as shipped
from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.evaluation import evaluate_model, score_detections
from blockrecon.ulm.nets import UlmNetConfig
from blockrecon.ulm.training import build_model, file_metadata, load_model, save_model

ROOT = Path(__file__).resolve().parents[2]
CLI = ["ulm", "--no-progress"]


def _script():
    spec = importlib.util.spec_from_file_location(
        "train_ulm_models", ROOT / "scripts" / "train_ulm_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_quick(script, results: Path, *extra: str) -> Path:
    """The script's ``--quick`` run at 1 thread into ``results``; the folder of its files."""
    threads = torch.get_num_threads()
    try:
        args = ["--quick", "--threads", "1", "--results-dir", str(results), *extra]
        assert script.main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return results / "ulm_models_quick"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The script's ``--quick`` run (both networks) into a temporary folder."""
    script = _script()
    return script, _run_quick(script, tmp_path_factory.mktemp("ulm_quick"))


@pytest.fixture
def installed(quick, monkeypatch):
    """The quick run's model files in the place of the shipped ones."""
    monkeypatch.setattr(shipped, "pretrained_ulm_folder", lambda: quick[1])
    return quick[1]


@pytest.mark.parametrize("dims", [2, 3])
def test_quick_run_writes_loadable_models_with_their_held_out_scores(quick, dims):
    script, folder = quick
    loaded = load_model(folder / shipped.PRETRAINED_FILES[dims])
    model, extra = loaded.model, loaded.extra
    settings = script.settings_for(dims, quick=True)
    assert model.kind == "sparse" and model.net.config.spatial_dims == dims
    assert list(model.net.config.channels) == settings["channels"]
    sparsifier = loaded.config["sparsifier"]
    inputs = settings.get("input_thresholds", [settings["sparsifier"][1]])  # calibrated
    assert sparsifier["kind"] == settings["sparsifier"][0] and sparsifier["value"] in inputs
    assert [row["input_threshold"] for row in extra["calibration"]] == inputs
    fresh = f"2000 + c, {settings.get('calibration_frames')} frames"  # seeds unseen in training
    assert extra["calibration_data"] == (fresh if dims == 3 else "training data")
    assert extra["seed"] == 0 and extra["settings"] == settings
    assert len(extra["history"]) == settings["steps"] and extra["train_seconds"] > 0
    report = json.loads((folder / f"ulm_pretrained_{dims}d.json").read_text())
    assert report["settings"] == settings

    # Every held-out row, recomputed independently from its seed on the saved network.
    rows = extra["held_out"]["rows"]
    assert len(rows) == 2 * len(settings["concentrations"])
    for c in settings["concentrations"]:
        acq = simulate_acquisition(
            settings["shape"], settings["held_out_frames"], c, seed=1000 + c, progress=False
        )
        network, _ = evaluate_model(model, acq, 16, progress=False)
        conv = conventional_ulm(acq.iq, acq.pixel_size, acq.frame_rate)
        conventional, _ = score_detections(acq, conv.positions, conv.frames)
        for method, scores in (("network", network), ("conventional", conventional)):
            (row,) = [r for r in rows if r["method"] == method and r["concentration"] == c]
            expected = asdict(scores)
            assert {k: row[k] for k in expected} == pytest.approx(expected, nan_ok=True)
    assert rows[1]["true_positives"] > 0  # the conventional baseline found bubbles


def test_quick_run_is_reproducible_from_its_seed(quick, tmp_path):
    script, folder = quick
    again = load_model(_run_quick(script, tmp_path, "--dims", "2") / "pretrained_ulm2d.pt").model
    first = load_model(folder / "pretrained_ulm2d.pt").model
    for (name, a), b in zip(
        first.net.state_dict().items(), again.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert first.threshold == again.threshold


def test_loader_reads_the_installed_file(installed):
    for dims in (2, 3):
        model, config, extra = shipped.load_pretrained_ulm(dims)
        file = load_model(installed / shipped.PRETRAINED_FILES[dims])
        assert model.net.config.spatial_dims == dims and config == file.config
        assert json.dumps(extra, sort_keys=True) == json.dumps(file.extra, sort_keys=True)
        for a, b in zip(
            model.net.state_dict().values(), file.model.net.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)


def test_loader_refuses_missing_foreign_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "pretrained_ulm_folder", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match=r"scripts/train_ulm_models.py --dims 3"):
        shipped.load_pretrained_ulm(3)
    (tmp_path / shipped.PRETRAINED_FILES[2]).write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a ULM model file"):
        shipped.load_pretrained_ulm(2)
    with pytest.raises(ValueError, match="not 4 spatial axes"):
        shipped.load_pretrained_ulm(4)


def test_shipped_files_are_package_data():
    """setup.cfg installs the shipped files with the package."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = cfg["options.package_data"]["blockrecon"].split()
    for name in shipped.PRETRAINED_FILES.values():
        assert any(fnmatch(f"ulm/{name}", glob) for glob in globs), name


def test_metadata_may_not_replace_the_models_entries(tmp_path):
    model = build_model("sparse", UlmNetConfig(2, (2, 2, 2), 2))
    with pytest.raises(ValueError, match="threshold"):
        save_model(tmp_path / "m.pt", model, {"threshold": 0.3})
    assert not (tmp_path / "m.pt").exists()


def _simulate(path, shape):
    args = [*CLI, "simulate", "--out", str(path), "--shape", *map(str, shape)]
    assert main([*args, "--frames", "32", "--concentration", "6", "--seed", "1"]) == 0
    return path


@pytest.mark.parametrize("shape", [(8, 8), (4, 4, 4)])
def test_evaluate_without_model_uses_the_shipped_network(installed, tmp_path, shape):
    data = _simulate(tmp_path / "acq.h5", shape)
    file = installed / shipped.PRETRAINED_FILES[len(shape)]
    default, explicit = tmp_path / "default.json", tmp_path / "explicit.json"
    assert main([*CLI, "evaluate", "--data", str(data), "--json", str(default)]) == 0
    args = ["evaluate", "--data", str(data), "--model", str(file), "--json", str(explicit)]
    assert main([*CLI, *args]) == 0
    default, explicit = json.loads(default.read_text()), json.loads(explicit.read_text())
    assert default["model"] == str(file)
    assert default == explicit


def test_map_without_model_uses_the_shipped_network(installed, tmp_path):
    data = _simulate(tmp_path / "acq.h5", (8, 8))
    file = installed / shipped.PRETRAINED_FILES[2]
    for name, model in (("default", []), ("explicit", ["--model", str(file)])):
        out = tmp_path / f"{name}.nii.gz"
        args = ["map", "--data", str(data), "--out", str(out), "--min-length", "1"]
        assert main([*CLI, *args, *model]) == 0
    default = np.asarray(nib.load(tmp_path / "default.nii.gz").dataobj)
    assert default.sum() > 0  # the quick network's tracks were drawn
    np.testing.assert_array_equal(
        default, np.asarray(nib.load(tmp_path / "explicit.nii.gz").dataobj)
    )


@pytest.mark.parametrize("command", ["evaluate", "map"])
def test_missing_shipped_network_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, command):
    data = _simulate(tmp_path / "acq.h5", (4, 4, 4))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(shipped, "pretrained_ulm_folder", lambda: empty)
    capsys.readouterr()
    before = set(tmp_path.rglob("*"))
    out = ["--json", str(tmp_path / "s.json")] if command == "evaluate" else []
    out = out or ["--out", str(tmp_path / "map.nii.gz"), "--mip", str(tmp_path / "map.png")]
    assert main([*CLI, command, "--data", str(data), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert "shipped 3D ULM model" in err and "scripts/train_ulm_models.py" in err
    assert len(err.splitlines()) == 1
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("seed", [7, 8])
def test_shipped_3d_network_tells_empty_neighbours_from_bubbles(seed):
    """Given the target cells and their empty neighbours (one cell around each, at every
    pruning scale), the shipped 3D network's 8x head gives the empty ones less than half the
    occupancy of the targets. A network trained on the target cells alone paints every site it
    is given (measured: 0.62-0.64 of the targets' occupancy), so at inference every site its
    coarse heads pass became part of a bubble, split into several detections."""
    model = shipped.load_pretrained_ulm(3).model
    model.net.eval()
    acq = simulate_acquisition((12, 12, 12), 16, 4.0, seed=seed, progress=False)
    blocks = acquisition_blocks(acq, 16)
    targets = blocks.targets
    with torch.no_grad():
        fine = model(blocks.inputs, targets.dilated(1, (1, 2, 4)))[8]
    occupancy = torch.sigmoid(fine.feats[:, 0])
    occupied = torch.isin(fine.keys(), targets.keys[8])
    assert occupied.any() and (~occupied).any()
    assert float(occupancy[~occupied].mean()) < 0.5 * float(occupancy[occupied].mean())


def test_rescore_recalibrates_the_trained_file_without_training(quick, tmp_path):
    script, folder = quick
    original = load_model(folder / "pretrained_ulm2d.pt")
    detuned = original.model
    detuned.threshold = 0.9
    save_model(tmp_path / "pretrained_ulm2d.pt", detuned, file_metadata(original))
    _run_quick(script, tmp_path / "results", "--dims", "2", "--rescore", "--out-dir", str(tmp_path))
    again = load_model(tmp_path / "pretrained_ulm2d.pt")
    assert again.model.threshold == load_model(folder / "pretrained_ulm2d.pt").model.threshold
    for (name, a), b in zip(
        original.model.net.state_dict().items(),
        again.model.net.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name
    for key in ("train_seconds", "threads", "final_loss", "history", "training_jaccard"):
        assert again.extra[key] == original.extra[key], key
    held_out = (json.dumps(m.extra["held_out"]) for m in (again, original))  # NaN == NaN
    assert next(held_out) == next(held_out)
