"""Gradient accumulation and an evaluation pass for unrolled networks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from blockrecon.losses import relative_l2
from blockrecon.train.data import TrainingPair

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accumulate_gradients(
    model: nn.Module, pairs: Sequence[TrainingPair], loss_fn: Loss = relative_l2
) -> float:
    """Backpropagate the mean loss over ``pairs``, one pair at a time; returns that mean.

    Gradients are added to the parameters' ``.grad`` (zero them before). Each pair is
    reconstructed by ``model(kspace, op)`` and compared with its target. Under
    ``DistributedDataParallel`` the gradients are all-reduced once, at the last pair (the others
    run under ``no_sync``), so the result is the mean over every rank's pairs.
    """
    if not pairs:
        raise ValueError("accumulate_gradients needs at least one pair")
    total = 0.0
    for k, pair in enumerate(pairs):
        last = k == len(pairs) - 1
        sync = (
            contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        )
        with sync:
            loss = loss_fn(model(pair.kspace, pair.op), pair.target)
            if not torch.isfinite(loss):
                raise ValueError(
                    f"training loss is {loss.item()}; lower the learning rate or the DC step"
                )
            (loss / len(pairs)).backward()
        total += float(loss.detach())
    return total / len(pairs)


def evaluate(model: nn.Module, pairs: Iterable[TrainingPair], loss_fn: Loss = relative_l2) -> float:
    """Mean loss over ``pairs`` without gradients."""
    model.eval()
    with torch.no_grad():
        losses = [float(loss_fn(model(p.kspace, p.op), p.target)) for p in pairs]
    if not losses:
        raise ValueError("evaluate needs at least one pair")
    return sum(losses) / len(losses)
