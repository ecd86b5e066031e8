"""Memory of one ULM training step (forward, loss of :func:`~blockrecon.ulm.training.training_loss`,
backward).

Counted with :func:`blockrecon.memory.saved_bytes` (peak live tensor bytes, parameters and
inputs excluded). ``meta=True`` runs a dense network on the meta device, so sizes that could
never be allocated are counted without allocating them (sparse networks need real data: their
sites depend on it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from blockrecon.memory import saved_bytes
from blockrecon.ulm.blocks import OccupancyTargets
from blockrecon.ulm.training import UlmModel, training_loss


@dataclass(frozen=True)
class StepMemory:
    """Peak bytes of one step and the number of sites at each scale (dense: grid sizes)."""

    peak_bytes: int
    sites: dict[int, int]


def training_step_memory(
    model: UlmModel, inputs: torch.Tensor, targets: OccupancyTargets, meta: bool = False
) -> StepMemory:
    """Peak live bytes of ``training_loss(model, inputs, targets)[0].backward()``."""
    if meta and model.kind != "dense":
        raise ValueError("only dense networks can be counted on the meta device")
    if meta:
        model = UlmModel(copy.deepcopy(model.net).to("meta"))
        inputs = torch.empty(inputs.shape, device="meta")
        targets = OccupancyTargets(
            targets.grid, targets.batch_size, {s: k.to("meta") for s, k in targets.keys.items()}
        )
    sites = {}

    def step() -> None:
        loss, outputs = training_loss(model, inputs, targets)
        for scale, out in outputs.items():
            sites[scale] = out.numel() if isinstance(out, torch.Tensor) else out.num_sites
        loss.backward()

    model.net.train()
    peak = saved_bytes(step)
    model.net.zero_grad(set_to_none=True)
    return StepMemory(peak, sites)
