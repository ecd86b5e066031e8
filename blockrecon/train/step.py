"""One optimisation step and an evaluation pass for unrolled networks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from blockrecon.losses import relative_l2
from blockrecon.train.simulated import TrainingPair

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, pair: TrainingPair,
               loss_fn: Loss = relative_l2) -> float:
    """Reconstruct ``pair.kspace`` with ``model(kspace, op)``, backpropagate, step; the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(pair.kspace, pair.op), pair.target)
    if not torch.isfinite(loss):
        raise ValueError(f"training loss is {loss.item()}; lower the learning rate or DC step")
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def evaluate(model: nn.Module, pairs: Iterable[TrainingPair], loss_fn: Loss = relative_l2
             ) -> float:
    """Mean loss over ``pairs`` without gradients."""
    model.eval()
    with torch.no_grad():
        losses = [float(loss_fn(model(p.kspace, p.op), p.target)) for p in pairs]
    if not losses:
        raise ValueError("evaluate needs at least one pair")
    return sum(losses) / len(losses)
