"""Gradient accumulation and an evaluation pass for unrolled networks, under an objective
(:mod:`blockrecon.train.objective`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from blockrecon.train.data import TrainingPair
from blockrecon.train.objective import Objective, Supervised


def accumulate_gradients(
    model: nn.Module, pairs: Sequence[TrainingPair], objective: Objective | None = None
) -> float:
    """Backpropagate the mean loss over ``pairs``, one pair at a time; returns that mean.

    Gradients are added to the parameters' ``.grad`` (zero them before). Each pair's loss is
    ``objective(model, pair)`` (default :class:`~blockrecon.train.objective.Supervised`: the
    reconstruction ``model(kspace, op)`` against the pair's target). Under
    ``DistributedDataParallel`` the gradients are all-reduced once, at the last pair (the others
    run under ``no_sync``), so the result is the mean over every rank's pairs.
    """
    if not pairs:
        raise ValueError("accumulate_gradients needs at least one pair")
    objective = objective or Supervised()
    total = 0.0
    for k, pair in enumerate(pairs):
        last = k == len(pairs) - 1
        sync = (
            contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        )
        with sync:
            loss = objective(model, pair)
            if not torch.isfinite(loss):
                raise ValueError(
                    f"training loss is {loss.item()}; lower the learning rate or the DC step"
                )
            (loss / len(pairs)).backward()
        total += float(loss.detach())
    return total / len(pairs)


def evaluate(
    model: nn.Module, pairs: Iterable[TrainingPair], objective: Objective | None = None
) -> float:
    """Mean ``objective(model, pair)`` over ``pairs`` without gradients (default supervised)."""
    objective = objective or Supervised()
    model.eval()
    with torch.no_grad():
        losses = [float(objective(model, p)) for p in pairs]
    if not losses:
        raise ValueError("evaluate needs at least one pair")
    return sum(losses) / len(losses)
