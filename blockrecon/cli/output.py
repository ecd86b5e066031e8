"""Outputs of the subcommands: checked before any work (the target's folder exists and takes new
files), JSON written strictly (non-finite numbers as ``null``) and atomically so that an
interrupted run leaves no half-written file, and output folders that a failed run created
removed again."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from blockrecon.atomic import atomic_write, check_writable


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


def check_output_file(path: Path, option: str = "--out") -> None:
    """Before any work: ``path`` can be written (its folder exists and takes a new file).

    Raises:
        FileNotFoundError: the folder does not exist (named after ``option``).
        IsADirectoryError: ``path`` is a folder.
        NotWritableError: the folder cannot take a new file (the message names ``path``).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{option} folder {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder, expected a file")
    check_writable(path)


def _first_missing(folder: Path) -> Path | None:
    """The outermost part of ``folder``'s path that does not exist; None when it all does."""
    return next((p for p in (*reversed(folder.parents), folder) if not p.exists()), None)


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Before any work: ``folder`` is a folder that takes new files, or can be created (with its
    parents) where its path ends.

    Raises:
        NotADirectoryError: ``folder``, or the part of its path that exists, is not a folder.
        NotWritableError: nothing can be created there (the message names the path).
    """
    folder = Path(folder)
    missing = _first_missing(folder)
    existing = folder if missing is None else missing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{option} {folder}: {existing} exists and is not a folder")
    check_writable(missing or folder)


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """Run the body; if it raises, remove the folders of ``folder``'s path that it created and
    left empty, so that a failed run leaves no empty output folder behind (files are kept)."""
    chain = [Path(folder), *Path(folder).parents]
    created = _first_missing(chain[0])
    try:
        yield
    except BaseException:
        for path in chain[: chain.index(created) + 1] if created is not None else ():
            if not path.is_dir() or any(path.iterdir()):
                break
            path.rmdir()
        raise
