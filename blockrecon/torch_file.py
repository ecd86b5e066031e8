"""Reading blockrecon's torch files safely: model files and training checkpoints of every kind.

Every blockrecon torch file is a ``torch.save`` of a dict of plain data carrying a ``format``
name; it is loaded with ``torch.load(weights_only=True)``, so opening one never runs code, and
checked for its format and required entries before anyone reads it. A checkpoint is resumed
only when what it stores matches the new run (:func:`check_same`).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_same", "read_torch_payload"]


def read_torch_payload(path: str | os.PathLike[str], fmt: str, required: Sequence[str],
                       kind: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Safely load a blockrecon torch file (``weights_only``) and check its format name and
    required entries; the caller checks its version.

    Args:
        path: the file.
        fmt: the ``format`` entry the file must carry.
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
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise ValueError(f"not a {kind}: {path} (no format {fmt!r})")
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


def check_same(stored: Mapping[str, Any], requested: Mapping[str, Any], what: str,
               path: str | os.PathLike[str]) -> None:
    """ValueError naming every entry of ``requested`` that differs from ``stored``."""
    differ = [f"{key}={stored.get(key)!r} (requested {value!r})"
              for key, value in requested.items() if stored.get(key) != value]
    if differ:
        raise ValueError(f"cannot resume from {path}: its {what} differs: {'; '.join(differ)}")
