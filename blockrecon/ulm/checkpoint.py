"""Checkpoints of ULM network training: continue an interrupted run exactly where it stopped.

A checkpoint is one ``torch.save`` file of plain data (it loads with
``torch.load(weights_only=True)``, so reading one never runs code), written atomically::

    {"format": "blockrecon.ulm.training", "format_version": 1,
     "model": <the model file content, see blockrecon.ulm.training.save_model>,
     "optimizer": <Adam state_dict>, "scheduler": <learning-rate schedule state_dict>,
     "generator": <uint8 state of the batch-drawing generator>,
     "losses": [<loss of every step done>], "settings": <what the run was started with>}

The batch draws are the only randomness of a ULM training step, so restoring the weights, the
optimizer, the schedule and the generator makes the continued run bitwise the uninterrupted one
(on the same machine and thread count). ``settings`` (step count, learning rate, batch size,
seed, loss weights, network, sparsifier and a fingerprint of the training blocks) must match
the resumed run's; a mismatch is refused with a message naming what differs
(:func:`blockrecon.torch_file.check_same`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blockrecon.atomic import atomic_write
from blockrecon.torch_file import read_torch_payload

FORMAT = "blockrecon.ulm.training"
FORMAT_VERSION = 1
KIND = "ULM training checkpoint"
REQUIRED_KEYS = (
    "format",
    "format_version",
    "model",
    "optimizer",
    "scheduler",
    "generator",
    "losses",
    "settings",
)


@dataclass(frozen=True)
class TrainingState:
    """Everything a ULM training run needs to continue (see the module docstring)."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor
    losses: list[float]
    settings: dict[str, Any]


def save_training_state(path: str | os.PathLike[str], state: TrainingState) -> Path:
    """Write ``state`` atomically to ``path`` (its folder must exist)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": state.model,
        "optimizer": state.optimizer,
        "scheduler": state.scheduler,
        "generator": state.generator,
        "losses": list(state.losses),
        "settings": dict(state.settings),
    }
    return atomic_write(path, lambda temporary: torch.save(payload, temporary))


def load_training_state(path: str | os.PathLike[str]) -> TrainingState:
    """Read a checkpoint written by :func:`save_training_state`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a ULM training checkpoint, or of another format version.
    """
    payload = read_torch_payload(path, FORMAT, REQUIRED_KEYS, KIND)
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{KIND} {path} has format version {payload['format_version']!r}; "
            f"this blockrecon reads version {FORMAT_VERSION}"
        )
    return TrainingState(
        payload["model"],
        payload["optimizer"],
        payload["scheduler"],
        payload["generator"],
        list(payload["losses"]),
        payload["settings"],
    )
