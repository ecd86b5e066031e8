"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``torch.save`` file of plain data (it loads with
``torch.load(weights_only=True)``, so reading one never runs code), written atomically::

    {"format": "blockrecon.training", "format_version": 1,
     "config": <resolved architecture, see blockrecon.models>, "state_dict": <model tensors>,
     "optimizer": <optimizer state_dict>, "rng": <torch, NumPy, Python (and CUDA) RNG states>,
     "epoch": <completed epochs>, "step": <batches done in the epoch under way>,
     "epoch_loss_sum": <sum of those batches' losses>, "history": [<one dict per epoch>],
     "settings": <what the run was started with: data, learning rate, seed, batch size...>}

The model part is checked against its architecture with the rules of :mod:`blockrecon.models`
(a checkpoint of another architecture is refused with a message naming the mismatch). The
model alone, for reconstruction, is written next to it by :func:`blockrecon.models.save_model`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from blockrecon.atomic import atomic_write
from blockrecon.models import build_unrolled, resolve_config
from blockrecon.models.files import check_state_dict
from blockrecon.torch_file import read_torch_payload

FORMAT = "blockrecon.training"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format",
    "format_version",
    "config",
    "state_dict",
    "optimizer",
    "rng",
    "epoch",
    "step",
    "epoch_loss_sum",
    "history",
    "settings",
)


def rng_states() -> dict[str, Any]:
    """The torch, NumPy, Python and (when present) CUDA random states, as plain data."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - the global one
    version, python_state, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the random states saved by :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state(  # noqa: NPY002 - restores the legacy global state that training uses
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    config: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    epoch: int,
    step: int,
    epoch_loss_sum: float,
    history: list[dict],
    settings: Mapping[str, Any],
) -> Path:
    """Write a training checkpoint atomically (contents in the module docstring).

    Args:
        path: the checkpoint file; its folder must exist.
        model: the (unwrapped) network.
        config: its architecture.
        optimizer: the optimizer.
        epoch: epochs completed.
        step: batches completed in epoch ``epoch`` (0 at an epoch boundary).
        epoch_loss_sum: sum of the training losses of those batches.
        history: one metrics dict per completed epoch.
        settings: JSON-able description of the run, compared on resume.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": resolve_config(config),
        "state_dict": state,
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(),
        "epoch": int(epoch),
        "step": int(step),
        "epoch_loss_sum": float(epoch_loss_sum),
        "history": list(history),
        "settings": dict(settings),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a checkpoint; its ``config`` is resolved and its weights fit it.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable checkpoint, another format or version, missing entries, or
            weights of another architecture than the stored configuration (names the mismatch).
    """
    payload = read_torch_payload(path, FORMAT, REQUIRED_KEYS, "blockrecon training checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {payload['format_version']!r}; "
            f"this blockrecon reads version {FORMAT_VERSION}"
        )
    try:
        payload["config"] = resolve_config(payload["config"])
    except ValueError as err:
        raise ValueError(f"checkpoint {path}: {err}") from None
    check_state_dict(
        build_unrolled(payload["config"]).state_dict(), payload["state_dict"], f"checkpoint {path}"
    )
    return payload
