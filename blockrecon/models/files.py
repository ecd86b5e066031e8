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

from blockrecon.models.config import build_unrolled, resolve_config
from blockrecon.torch_file import FileKind, LoadedModel, ModelFile, read_model_file, save_model_file
from blockrecon.unrolled import UnrolledNet

#: Unrolled-network model files.
UNROLLED_FILE = FileKind("blockrecon.unrolled", 1, "blockrecon model file")
FORMAT_VERSION = UNROLLED_FILE.version
MAX_LISTED = 4  # mismatches named in an error message


def save_model(
    path: str | os.PathLike[str],
    model: UnrolledNet,
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
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
    state = model.state_dict()
    check_state_dict(build_unrolled(resolved).state_dict(), state, "model")
    return save_model_file(path, state, resolved, extra, UNROLLED_FILE)


def check_state_dict(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], what: str
) -> None:
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
            problems.append(
                f"{key} has shape {tuple(value.shape)}, the architecture expects "
                f"{tuple(expected[key].shape)}"
            )
    if problems:
        shown = problems[:MAX_LISTED] + (
            [f"and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else []
        )
        raise ValueError(f"{what} does not match the configured architecture: " + "; ".join(shown))


def read_unrolled_file(path: str | os.PathLike[str], device: Any = None) -> ModelFile:
    """The checked content of a model file (``config`` not yet resolved), read once.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a torch file, unsafe content, another format or a newer version, or
            missing entries.
    """
    return read_model_file(path, UNROLLED_FILE, device or "cpu")


def load_model(
    path: str | os.PathLike[str], device: Any = None, overrides: Mapping[str, Any] | None = None
) -> LoadedModel:
    """Rebuild the network stored in ``path`` and load its weights.

    Args:
        path: a file written by :func:`save_model`.
        device: device of the returned model (default the CPU).
        overrides: configuration entries replacing the stored ones, e.g.
            ``{"patch_size": 16}`` to apply the regularizer on smaller blocks; entries that
            change the parameters make loading fail with ``ValueError``.

    Returns:
        ``(model, config, extra)``: the network in eval mode, its resolved configuration and
        its metadata.

    Raises:
        FileNotFoundError, ValueError: see :func:`read_unrolled_file`; also an invalid stored
        configuration, or weights that do not fit it (names the mismatched entries).
    """
    return model_from_file(read_unrolled_file(path, device), path, device, overrides)


def model_from_file(
    file: ModelFile,
    path: str | os.PathLike[str],
    device: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """:func:`load_model` on a file already read by :func:`read_unrolled_file` from ``path``
    (named in errors), so that a caller that needs the stored configuration or metadata first
    reads the file once."""
    try:
        config = resolve_config({**file.config, **dict(overrides or {})})
    except ValueError as err:
        raise ValueError(f"model file {path}: {err}") from err
    model = build_unrolled(config)
    check_state_dict(model.state_dict(), file.state, f"model file {path}")
    model.load_state_dict(file.state)
    return LoadedModel(model.to(device or "cpu").eval(), config, dict(file.extra))
