"""JSON output of the subcommands: strict JSON (non-finite numbers as ``null``), written
atomically so that an interrupted run leaves no half-written file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from blockrecon.atomic import atomic_write


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by None, recursively through
    dicts, lists and tuples (tuples become lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def write_json(path: Path, payload: Any, option: str = "--json") -> None:
    """Write ``payload`` as indented strict JSON to ``path`` atomically.

    Raises:
        FileNotFoundError: if ``path``'s folder does not exist (named after ``option``).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{option} folder {path.parent} does not exist")
    text = json.dumps(json_safe(payload), indent=2, allow_nan=False)
    atomic_write(path, lambda temporary: temporary.write_text(text))
