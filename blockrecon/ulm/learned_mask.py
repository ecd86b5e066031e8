"""Choosing the input sites of the sparse network: intensity threshold, top-k, or a small
learned mask network.

The learned mask is a one-block dense network at the input resolution (cheap next to the
detector: no fine grid) predicting, per frame, which voxels lie within one voxel of a bubble; it
is trained with a class-balanced binary cross-entropy and keeps the voxels with probability
> 0.5.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from blockrecon.progress import progress_bar
from blockrecon.sparse import SparseTensor
from blockrecon.sparse.select import select_sites, site_energy
from blockrecon.ulm.blocks import UlmBlocks
from blockrecon.ulm.nets.layers import FactorizedConv, PointwiseConv

SPARSIFIERS = ("threshold", "topk", "learned")
#: Default threshold on |x|^2 of the normalized block (``blockrecon.ulm.blocks.iq_channels``):
#: keeps > 93% of the bubbles at 40 bubbles/frame in 16-frame blocks of 16^2, 32^2 and 16^3
#: voxels, where 0.25 keeps a third or less (``benchmarks/bench_ulm_sparsify.py --quick``).
INPUT_THRESHOLD = 0.01


class LearnedMask(nn.Module):
    """Keep-logits (B, T, *S) of a block (B, 2, T, *S): factorized conv block + 1x1 head."""

    def __init__(self, spatial_dims: int = 2, channels: int = 4):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims = spatial_dims
        self.block = FactorizedConv(2, channels, spatial_dims)
        self.head = PointwiseConv(channels, 1, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 3 + self.spatial_dims or x.shape[1] != 2:
            raise ValueError(f"input must be (B, 2, T, *S) with {self.spatial_dims} spatial axes")
        return self.head.forward_dense(self.block.forward_dense(x))[:, 0]


def mask_targets(blocks: UlmBlocks) -> torch.Tensor:
    """Float (B, T, *S): 1 within one voxel (per frame, full neighbourhood) of a bubble."""
    occupied = blocks.targets.dense(1).unsqueeze(1)
    d = occupied.ndim - 3
    dilated = F.max_pool3d if d == 3 else F.max_pool2d
    b, _, t = occupied.shape[:3]
    frames = occupied.reshape(b * t, 1, *occupied.shape[3:])
    return dilated(frames, 3, stride=1, padding=1).reshape(b, t, *occupied.shape[3:])


def train_learned_mask(
    mask: LearnedMask,
    blocks: UlmBlocks,
    steps: int = 100,
    lr: float = 1e-2,
    batch_size: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Fit ``mask`` to :func:`mask_targets` with positive-weighted BCE; returns the losses."""
    target = mask_targets(blocks)
    positive = float(target.mean())
    pos_weight = torch.tensor((1 - positive) / max(positive, 1e-6))
    optimizer = torch.optim.Adam(mask.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in progress_bar(range(steps), "mask", progress):
        items = torch.randint(blocks.inputs.shape[0], (batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(
            mask(blocks.inputs[items]), target[items], pos_weight=pos_weight
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


class InputSparsifier:
    """Callable x (B, 2, T, *S) -> SparseTensor of the kept sites.

    Args:
        kind: ``"threshold"`` keeps |x|^2 (real^2 + imag^2 of the normalized block) > value;
            ``"topk"`` keeps the ``value`` (fraction in (0, 1]) most intense sites of each
            block; ``"learned"`` keeps the sites where ``mask`` predicts > 0.5.
        value: the threshold or fraction (unused for ``"learned"``).
        mask: a :class:`LearnedMask` for ``"learned"``.
    """

    def __init__(
        self,
        kind: str = "threshold",
        value: float = INPUT_THRESHOLD,
        mask: LearnedMask | None = None,
    ):
        if kind not in SPARSIFIERS:
            raise ValueError(f"sparsifier must be one of {SPARSIFIERS}, got {kind!r}")
        if kind == "topk" and not 0 < value <= 1:
            raise ValueError(f"topk fraction must be in (0, 1], got {value}")
        if kind == "threshold" and not value >= 0:
            raise ValueError(f"threshold must be >= 0, got {value}")
        if kind == "learned" and not isinstance(mask, LearnedMask):
            raise ValueError("the learned sparsifier needs a LearnedMask")
        self.kind, self.value, self.mask = kind, value, mask

    def __call__(self, x: torch.Tensor) -> SparseTensor:
        return SparseTensor.from_dense(x, mask=self.keep(x))

    def keep(self, x: torch.Tensor) -> torch.Tensor:
        """Bool (B, T, *S): the sites of ``x`` (B, 2, T, *S) this sparsifier keeps."""
        if self.kind == "learned":
            with torch.no_grad():
                return self.mask(x) > 0
        if self.kind == "threshold":
            return select_sites(site_energy(x), threshold=self.value)
        volume = math.prod(x.shape[2:])
        return select_sites(site_energy(x), topk=max(1, round(self.value * volume)))
