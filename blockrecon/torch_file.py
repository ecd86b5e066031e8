"""Reading blockrecon's torch files safely: model files and training checkpoints of every kind.

Every blockrecon torch file is a ``torch.save`` of a dict of plain data carrying a ``format``
name; it is loaded with ``torch.load(weights_only=True)``, so opening one never runs code, and
checked for its format and required entries before anyone reads it. A checkpoint is resumed
only when what it stores matches the new run (:func:`check_same`).

Model files of every domain (unrolled MRI networks, ULM networks, segmentation U-Nets) share one
layout, written by :func:`save_model_file` and read by :func:`read_model_file`::

    {"format": <FileKind.format>, "format_version": <int>, "config": <architecture>,
     "state_dict": <tensors>, "extra": <metadata>}

Each domain's ``load_model`` returns a :class:`LoadedModel` ``(model, config, extra)``; a file
whose content does not rebuild a network raises ``ValueError("{path}: damaged {kind} (...)")``
(:func:`damaged_file`).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from blockrecon.atomic import atomic_write

__all__ = [
    "FileKind",
    "LoadedModel",
    "ModelFile",
    "check_same",
    "damaged_file",
    "model_file_from_payload",
    "model_payload",
    "read_model_file",
    "read_torch_payload",
    "save_model_file",
]

MODEL_KEYS = ("format", "config", "state_dict", "extra")


@dataclass(frozen=True)
class FileKind:
    """A kind of model file.

    Attributes:
        format: the ``format`` entry it carries.
        version: the newest ``format_version`` (written, and the highest read).
        name: what it is, for messages (``"blockrecon model file"``...).
        legacy_formats: older ``format`` names still read (as version 1, through ``upgrade``).
        upgrade: turns a legacy payload into the current layout (None: same layout).
    """

    format: str
    version: int
    name: str
    legacy_formats: tuple[str, ...] = ()
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None


@dataclass(frozen=True)
class ModelFile:
    """The checked content of a model file: weights, architecture, metadata, version."""

    state: dict[str, Any]
    config: dict[str, Any]
    extra: dict[str, Any]
    version: int


class LoadedModel(NamedTuple):
    """What every domain's ``load_model`` returns: the network (eval mode), its architecture
    and its metadata."""

    model: Any
    config: dict[str, Any]
    extra: dict[str, Any]


def read_torch_payload(
    path: str | os.PathLike[str],
    fmt: str | tuple[str, ...],
    required: Sequence[str],
    kind: str,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Safely load a blockrecon torch file (``weights_only``) and check its format name and
    required entries; the caller checks its version.

    Args:
        path: the file.
        fmt: the ``format`` entry the file must carry (or one of them).
        required: entries the payload must have.
        kind: what the file is, for messages (``"blockrecon model file"``...).
        map_location: device of the loaded tensors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``not a {kind}: {path} (...)`` in one line for an empty, corrupt or foreign
            file, unsafe content or another format; missing entries.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} {path} does not exist")
    try:
        with warnings.catch_warnings():  # e.g. about a foreign pickle protocol
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load raises many types on foreign bytes
        raise ValueError(f"not a {kind}: {path} ({_load_failure(path, err)})") from None
    formats = (fmt,) if isinstance(fmt, str) else fmt
    if not isinstance(payload, dict) or payload.get("format") not in formats:
        raise ValueError(f"not a {kind}: {path} (no format {formats[0]!r})")
    missing = [k for k in required if k not in payload]
    if missing:
        raise ValueError(f"{kind} {path} lacks {', '.join(missing)}")
    return payload


def _load_failure(path: Path, err: Exception) -> str:
    """Why ``torch.load`` failed on ``path``, in a few words (not torch's advice)."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(err, pickle.UnpicklingError):
        return "corrupt, or holds objects other than tensors and plain data"
    return "corrupt, truncated or not a torch file"


def check_same(
    stored: Mapping[str, Any], requested: Mapping[str, Any], what: str, path: str | os.PathLike[str]
) -> None:
    """ValueError naming every entry of ``requested`` that differs from ``stored``."""
    differ = [
        f"{key}={stored.get(key)!r} (requested {value!r})"
        for key, value in requested.items()
        if stored.get(key) != value
    ]
    if differ:
        raise ValueError(f"cannot resume from {path}: its {what} differs: {'; '.join(differ)}")


def model_payload(
    state: Mapping[str, Any], config: Mapping[str, Any], extra: Mapping[str, Any], kind: FileKind
) -> dict[str, Any]:
    """The plain-data content of a model file (also stored inside training checkpoints)."""
    return {
        "format": kind.format,
        "format_version": kind.version,
        "config": dict(config),
        "state_dict": {
            k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v
            for k, v in state.items()
        },
        "extra": dict(extra),
    }


def save_model_file(
    path: str | os.PathLike[str],
    state: Mapping[str, Any],
    config: Mapping[str, Any],
    extra: Mapping[str, Any],
    kind: FileKind,
) -> Path:
    """Write a model file atomically (:mod:`blockrecon.atomic`); its folder must exist."""
    payload = model_payload(state, config, extra, kind)
    return atomic_write(path, lambda temporary: torch.save(payload, temporary))


def read_model_file(
    path: str | os.PathLike[str], kind: FileKind, map_location: Any = "cpu"
) -> ModelFile:
    """Safely read and check a model file of ``kind``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``not a {kind.name}: {path} (...)`` for an empty, corrupt, unsafe or
            foreign file; missing entries; a newer format version.
    """
    payload = read_torch_payload(
        path, (kind.format, *kind.legacy_formats), (), kind.name, map_location
    )
    return model_file_from_payload(payload, path, kind)


def model_file_from_payload(
    payload: dict[str, Any], path: str | os.PathLike[str], kind: FileKind
) -> ModelFile:
    """Check a model file's payload (read from ``path``, named in errors) and return it."""
    if payload.get("format") in kind.legacy_formats and kind.upgrade is not None:
        with damaged_file(path, kind.name):
            payload = kind.upgrade(payload)
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise ValueError(f"{kind.name} {path} lacks {', '.join(missing)}")
    version = payload.get("format_version", 1)
    if not isinstance(version, int) or not 1 <= version <= kind.version:
        raise ValueError(
            f"{kind.name} {path} has format version {version!r}; this blockrecon "
            f"reads versions 1 to {kind.version}"
        )
    parts = {k: payload[k] for k in ("state_dict", "config", "extra")}
    wrong = [k for k, v in parts.items() if not isinstance(v, dict)]
    if wrong:
        raise ValueError(f"{kind.name} {path}: {', '.join(wrong)} must be dicts")
    return ModelFile(parts["state_dict"], parts["config"], parts["extra"], version)


@contextmanager
def damaged_file(path: str | os.PathLike[str], name: str) -> Iterator[None]:
    """Turn the errors of rebuilding a network from a file's content into one
    ``ValueError("{path}: damaged {name} ({error})")``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        text = str(err).splitlines()[0] if str(err) else repr(err)
        raise ValueError(f"{path}: damaged {name} ({type(err).__name__}: {text})") from None
