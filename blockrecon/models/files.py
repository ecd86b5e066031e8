"""Model files: an unrolled network's configuration, weights and metadata in one torch file.

The file is a ``torch.save`` of a dict with only plain data (it loads with
``torch.load(weights_only=True)``, so opening a model file never runs code)::

    {"format": "blockrecon.unrolled", "format_version": 1,
     "config": <resolved configuration>, "state_dict": <tensors>, "extra": <JSON-able dict>}

``extra`` carries whatever describes the training (acceleration, image size, SNR, seed,
metrics...). It is written atomically (:mod:`blockrecon.atomic`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from blockrecon.atomic import atomic_write
from blockrecon.models.config import build_unrolled, resolve_config
from blockrecon.torch_file import read_torch_payload
from blockrecon.unrolled import UnrolledNet

FORMAT = "blockrecon.unrolled"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "state_dict", "extra")
MAX_LISTED = 4  # mismatches named in an error message


def save_model(path: str | os.PathLike[str], model: UnrolledNet, config: Mapping[str, Any],
               extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with its ``config`` and ``extra`` metadata to ``path``.

    Args:
        path: the model file (conventionally ``.pt``); its folder must exist.
        model: the network, built by :func:`~blockrecon.models.build_unrolled` from ``config``.
        config: its architecture (validated; stored with defaults filled in).
        extra: JSON-able metadata (training acceleration, image size, SNR, seed, metrics...).

    Raises:
        ValueError: invalid ``config``, ``extra`` not JSON-able, or ``model`` not of the
            architecture ``config`` describes.
    """
    resolved = resolve_config(config)
    extra = dict(extra or {})
    try:
        extra = json.loads(json.dumps(extra))
    except (TypeError, ValueError) as err:
        raise ValueError(f"extra metadata must be JSON-able: {err}") from err
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    check_state_dict(build_unrolled(resolved).state_dict(), state, "model")
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": resolved,
               "state_dict": state, "extra": extra}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def check_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                     what: str) -> None:
    """ValueError naming missing, unexpected and mis-shaped entries of ``given``."""
    problems = []
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected)}")
    for key in sorted(set(expected) & set(given)):
        value = given[key]
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is not a tensor")
        elif value.shape != expected[key].shape:
            problems.append(f"{key} has shape {tuple(value.shape)}, the architecture expects "
                            f"{tuple(expected[key].shape)}")
    if problems:
        shown = problems[:MAX_LISTED] + (
            [f"and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else [])
        raise ValueError(f"{what} does not match the configured architecture: "
                         + "; ".join(shown))


def read_model_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """The checked payload of a model file (``config`` not yet resolved).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a torch file, unsafe content, another format or a newer version, or
            missing entries.
    """
    payload = read_torch_payload(path, FORMAT, REQUIRED_KEYS, "blockrecon model file",
                                 map_location)
    version = payload["format_version"]
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"model file {path} has format version {version!r}; this blockrecon "
                         f"reads versions 1 to {FORMAT_VERSION}")
    if not isinstance(payload["state_dict"], dict) or not isinstance(payload["extra"], dict):
        raise ValueError(f"model file {path}: state_dict and extra must be dicts")
    return payload


def load_model(path: str | os.PathLike[str], map_location: Any = "cpu",
               overrides: Mapping[str, Any] | None = None) -> tuple[UnrolledNet, dict[str, Any]]:
    """Rebuild the network stored in ``path`` and load its weights.

    Args:
        path: a file written by :func:`save_model`.
        map_location: device of the returned model (as for ``torch.load``).
        overrides: configuration entries replacing the stored ones, e.g.
            ``{"patch_size": 16}`` to apply the regularizer on smaller blocks; entries that
            change the parameters make loading fail with ``ValueError``.

    Returns:
        ``(model, config)``: the network in eval mode and its resolved configuration.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_model_file`; also an invalid stored
        configuration, or weights that do not fit it (names the mismatched entries).
    """
    payload = read_model_file(path, map_location)
    stored = payload["config"]
    if not isinstance(stored, dict):
        raise ValueError(f"model file {path}: config must be a dict")
    try:
        config = resolve_config({**stored, **dict(overrides or {})})
    except ValueError as err:
        raise ValueError(f"model file {path}: {err}") from err
    model = build_unrolled(config)
    check_state_dict(model.state_dict(), payload["state_dict"], f"model file {path}")
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval(), config


def model_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``extra`` metadata stored in a model file (no network is built)."""
    return dict(read_model_file(path)["extra"])
