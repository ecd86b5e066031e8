"""``blockrecon ulm`` end to end on tiny data, and bad input exiting 2 with one line."""

import json

import pytest

from blockrecon.cli import main


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory):
    path = tmp_path_factory.mktemp("ulm") / "acq.h5"
    assert main(["ulm", "--no-progress", "simulate", "--out", str(path), "--shape", "8", "8",
                 "--frames", "32", "--concentration", "2", "--seed", "1"]) == 0
    return path


def test_simulate_train_evaluate(acquisition, tmp_path):
    model = tmp_path / "m.pt"
    assert main(["ulm", "--no-progress", "train", "--data", str(acquisition), "--out",
                 str(model), "--kind", "sparse", "--steps", "2", "--channels", "2", "2", "2",
                 "--fine-channels", "2"]) == 0
    assert main(["ulm", "--no-progress", "calibrate", "--model", str(model), "--data",
                 str(acquisition)]) == 0
    scores = tmp_path / "s.json"
    assert main(["ulm", "--no-progress", "evaluate", "--data", str(acquisition), "--model",
                 str(model), "--json", str(scores)]) == 0
    result = json.loads(scores.read_text())
    assert 0 <= result["jaccard"] <= 1
    assert result["true_positives"] + result["false_negatives"] > 0


def test_bench_memory(tmp_path):
    out = tmp_path / "mem.json"
    assert main(["ulm", "--no-progress", "bench-memory", "--shape", "8", "8", "--frames", "16",
                 "--concentration", "2", "--dense-real", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows["dense"]["peak_bytes"] == rows["dense (meta count)"]["peak_bytes"]
    assert rows["sparse"]["peak_bytes"] < rows["dense"]["peak_bytes"]


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "{acq}", "--out", "{tmp}/m.txt"], "must end in .pt"),
    (["train", "--data", "{tmp}/missing.h5", "--out", "{tmp}/m.pt"], "no such file"),
    (["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--block-frames", "8",
      "--steps", "1"], "multiple of 16"),
    (["train", "--data", "{acq}", "--out", "{tmp}/m.pt", "--sparsifier", "topk",
      "--steps", "1"], "needs --sparsity"),
    (["evaluate", "--data", "{acq}", "--model", "{acq}"], "not a ULM model"),
    (["calibrate", "--data", "{acq}", "--model", "{tmp}/missing.pt"], "no such model file"),
    (["simulate", "--out", "{tmp}/a.txt"], "must end in .h5"),
])
def test_bad_input_exits_2(acquisition, tmp_path, capsys, args, message):
    args = [a.format(acq=acquisition, tmp=tmp_path) for a in args]
    assert main(["ulm", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
