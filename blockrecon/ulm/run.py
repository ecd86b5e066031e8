"""A ULM training run from acquisitions to a calibrated model file.

:func:`checkpoint_for` places the run's checkpoint and checks the paths before any work;
:func:`train_model_file` trains (writing the checkpoint as it goes, resuming from it), chooses
the decoding threshold on the training acquisitions, writes the model file and removes the
checkpoint. An interrupted run raises :class:`TrainingInterrupted` naming the checkpoint to
resume from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.blocks import UlmBlocks, acquisition_blocks, concat_blocks
from blockrecon.ulm.evaluation import calibrate_threshold
from blockrecon.ulm.training import UlmModel, save_model, train_ulm

CHECKPOINT_SUFFIX = ".ckpt.pt"


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by the user; ``checkpoint`` (None if none was written yet) continues
    it with ``resume=True``."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(checkpoint)
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class TrainedModel:
    """The result of :func:`train_model_file`: the model written, the loss of every step, the
    training Jaccard index per candidate threshold and the number of training blocks."""

    model: UlmModel
    losses: list[float]
    jaccard: dict[float, float]
    n_blocks: int


def checkpoint_for(
    out: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> Path:
    """The checkpoint of the run writing ``out`` (default: ``out`` with suffix ``.ckpt.pt``).

    Raises:
        ValueError: ``out`` does not end in ``.pt``, or the checkpoint is ``out`` itself.
        FileNotFoundError: a folder does not exist, or ``resume`` without a checkpoint.
    """
    out = Path(out)
    if out.suffix != ".pt":
        raise ValueError(f"--out {out} must end in .pt")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out folder {out.parent} does not exist")
    path = out.with_suffix(CHECKPOINT_SUFFIX) if checkpoint is None else Path(checkpoint)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--checkpoint folder {path.parent} does not exist")
    if path.resolve() == out.resolve():
        raise ValueError(
            f"--checkpoint {path} is the --out model file: the checkpoint "
            "is removed once the model is written"
        )
    if resume and not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {path}")
    return path


def calibrate_on_training_data(
    model: UlmModel,
    acquisitions: Sequence[UlmAcquisition],
    block_frames: int,
    calibration_frames: int | None = None,
    progress: bool = True,
) -> dict[float, float]:
    """Calibrate ``model``'s decoding threshold on the first ``calibration_frames`` frames of
    each training acquisition (None: all of them); returns {threshold: Jaccard}
    (:func:`~blockrecon.ulm.evaluation.calibrate_threshold`)."""
    if calibration_frames is not None:
        acquisitions = [a.first_frames(calibration_frames) for a in acquisitions]
    return calibrate_threshold(model, acquisitions, block_frames, progress=progress)


def train_model_file(
    out: str | os.PathLike[str],
    acquisitions: Sequence[UlmAcquisition],
    make_model: Callable[[UlmBlocks], UlmModel],
    *,
    block_frames: int,
    steps: int,
    checkpoint: Path,
    seed: int = 0,
    resume: bool = False,
    checkpoint_every: int = 100,
    progress: bool = True,
    calibration_frames: int | None = None,
    **training: Any,
) -> TrainedModel:
    """Train a model on the blocks of ``acquisitions``, calibrate its decoding threshold on
    them, write it to ``out`` and remove ``checkpoint``.

    Args:
        out: the model file.
        acquisitions: training acquisitions, cut into blocks of ``block_frames`` frames.
        make_model: the initial model for the blocks (called after seeding torch with
            ``seed``).
        checkpoint: from :func:`checkpoint_for`.
        calibration_frames: calibrate on the first this many frames of each acquisition
            (default all: on large blocks decoding every frame at each threshold takes longer
            than much of the training).
        training: further arguments of :func:`~blockrecon.ulm.training.train_ulm` (``lr``,
            ``batch_size``, ``bce_weight``, ``class_balanced``).

    Raises:
        TrainingInterrupted: on KeyboardInterrupt.
        ValueError: ``calibration_frames`` shorter than a block; see
            :func:`~blockrecon.ulm.training.train_ulm`.
    """
    if calibration_frames is not None and calibration_frames < block_frames:
        raise ValueError(
            f"calibration_frames ({calibration_frames}) must hold at least one block of "
            f"{block_frames} frames"
        )
    blocks = concat_blocks([acquisition_blocks(a, block_frames) for a in acquisitions])
    torch.manual_seed(seed)
    model = make_model(blocks)
    try:
        losses = train_ulm(
            model,
            blocks,
            steps,
            seed=seed,
            progress=progress,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            **training,
        )
    except KeyboardInterrupt:
        raise TrainingInterrupted(checkpoint if checkpoint.is_file() else None) from None
    jaccard = calibrate_on_training_data(
        model, acquisitions, block_frames, calibration_frames, progress
    )
    save_model(out, model)
    checkpoint.unlink(missing_ok=True)
    return TrainedModel(model, losses, jaccard, blocks.inputs.shape[0])
