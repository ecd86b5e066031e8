"""JSON written by the subcommands: strict (non-finite numbers as null) and atomic."""

import json
import math

import pytest

from blockrecon.cli.output import json_safe, write_json


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth(tmp_path):
    payload = {"jaccard": math.nan, "rows": [{"rmse": math.inf}, (1.5, -math.inf)], "n": 3}
    path = tmp_path / "scores.json"
    write_json(path, payload)
    assert _strict(path.read_text()) == {
        "jaccard": None,
        "rows": [{"rmse": None}, [1.5, None]],
        "n": 3,
    }
    assert json_safe(payload)["n"] == 3 and math.isnan(payload["jaccard"])  # input untouched


def test_missing_folder_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="--json folder"):
        write_json(tmp_path / "missing" / "a.json", {"a": 1})
    assert not (tmp_path / "missing").exists()


def test_unserializable_payload_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "a.json", {"a": object()})
    assert list(tmp_path.iterdir()) == []
