"""``blockrecon seg`` end to end at tiny sizes."""

import json

import nibabel as nib
import numpy as np
import pytest

from blockrecon.cli import main
from blockrecon.seg import load_model

DATA = ["--synthetic", "1", "--frames", "2", "--size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "m.pt"
    assert (
        main(
            [
                "seg",
                "train",
                *DATA,
                "--epochs",
                "1",
                "--base-width",
                "2",
                "--depth",
                "2",
                "--sparsity",
                "0.5",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    return path


def test_train_evaluate_prune(model_path, tmp_path, capsys):
    assert load_model(model_path)[0].widths[0] == 2
    out_json = tmp_path / "scores.json"
    assert (
        main(
            [
                "seg",
                "evaluate",
                "--model",
                str(model_path),
                *DATA,
                "--seed",
                "3",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    scores = json.loads(out_json.read_text())
    assert len(scores["dice"]) == 3 and all(0 <= d <= 1 for d in scores["dice"])
    pruned = tmp_path / "p.pt"
    png = tmp_path / "f.png"
    assert (
        main(
            [
                "seg",
                "prune",
                "--model",
                str(model_path),
                *DATA,
                "--ratio",
                "0.5",
                "--ranking",
                "global",
                "--out",
                str(pruned),
                "--png",
                str(png),
            ]
        )
        == 0
    )
    assert "parameters" in capsys.readouterr().out
    before, after = load_model(model_path)[0], load_model(pruned)[0]
    assert sum(after.widths) <= 0.6 * sum(before.widths)
    assert sum(p.numel() for p in after.parameters()) < sum(p.numel() for p in before.parameters())
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_predict_writes_nifti_labels(model_path, tmp_path):
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    nib.save(
        nib.Nifti1Image(np.random.default_rng(0).random((30, 34, 3), dtype=np.float32), affine),
        str(tmp_path / "img.nii.gz"),
    )
    out = tmp_path / "pred.nii.gz"
    assert (
        main(
            [
                "seg",
                "predict",
                "--model",
                str(model_path),
                "--input",
                str(tmp_path / "img.nii.gz"),
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    pred = nib.load(str(out))
    assert pred.shape == (30, 34, 3) and np.allclose(pred.affine, affine)
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2, 3}


def test_bad_input_exits_2_with_one_line(model_path, tmp_path, capsys):
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), str(tmp_path / "a.nii"))
    cases = [
        [
            "seg",
            "predict",
            "--model",
            str(model_path),
            "--input",
            str(tmp_path / "a.nii"),
            "--output",
            str(tmp_path / "o.nii"),
        ],
        [
            "seg",
            "prune",
            "--model",
            str(model_path),
            *DATA,
            "--ratio",
            "1.5",
            "--out",
            str(tmp_path / "p.pt"),
        ],
        ["seg", "evaluate", "--model", str(tmp_path / "missing.pt")],
        ["seg", "train", "--synthetic", "1", "--size", "8", "--out", str(tmp_path / "m.pt")],
    ]
    for argv in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("blockrecon seg: error:") and "\n" not in err
    assert not list(tmp_path.glob("*.pt"))
