"""Keeping built training pairs in memory within a budget.

Building a pair (reading the file, estimating coil maps, the operator norm, the Toeplitz kernel)
costs far more than using it, so training datasets keep built pairs; a folder of large 3D scans
does not fit in memory, so a :class:`PairCache` keeps pairs only while their total stays within
``budget_bytes`` and the rest are rebuilt on each access. Which pairs are kept depends only on
the order of first access, and a rebuilt pair equals the cached one, so a budget changes the
memory and the time of a run, never its losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch

from blockrecon.train.data import TrainingPair

__all__ = ["PairCache", "pair_nbytes"]


def _kernel_nbytes(op) -> int:
    """The real float32 Toeplitz kernel on the 2x grid of a Toeplitz operator (built once)."""
    if op.normal_kind != "toeplitz":
        return 0
    return 4 * math.prod(2 * n for n in op.image_shape)


def pair_nbytes(pair: TrainingPair) -> int:
    """Bytes a built pair holds: k-space, target, operators (maps, trajectory, weights and the
    float32 Toeplitz kernel of a Toeplitz operator) and held-out samples; tensors that share
    storage (e.g. the maps of both operators) are counted once."""
    ops = [pair.op] + ([] if pair.heldout is None else [pair.heldout.op])
    tensors: list[torch.Tensor | None] = [pair.kspace, pair.target]
    if pair.heldout is not None:
        tensors.append(pair.heldout.kspace)
    for op in ops:
        tensors += [op.maps, op.nufft.coord, op.weights]
    storages = {
        (t.untyped_storage().data_ptr(), t.device): t.untyped_storage().nbytes()
        for t in tensors
        if t is not None
    }
    return sum(storages.values()) + sum(_kernel_nbytes(op) for op in ops)


@dataclass
class PairCache:
    """Built pairs kept in memory while their :func:`pair_nbytes` total fits ``budget_bytes``.

    One cache may serve several datasets (keys are any hashable, e.g. ``("files", 3)``), so that
    one budget covers a dataset and the views built from it.

    Attributes:
        budget_bytes: the most bytes kept (``None``: no limit; 0 keeps nothing).
        held_bytes: bytes of the pairs kept now.
        builds: pairs built so far (first builds and rebuilds).
    """

    budget_bytes: int | None = None
    held_bytes: int = 0
    builds: int = 0
    _pairs: dict[Hashable, TrainingPair] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.budget_bytes is not None and not (
            isinstance(self.budget_bytes, int) and self.budget_bytes >= 0
        ):
            raise ValueError(
                f"the memory budget must be a non-negative number of bytes, got "
                f"{self.budget_bytes!r}"
            )

    def __len__(self) -> int:
        return len(self._pairs)

    def get(self, key: Hashable, build: Callable[[], TrainingPair]) -> TrainingPair:
        """The pair kept under ``key``, else ``build()``, kept if it fits the budget."""
        if key in self._pairs:
            return self._pairs[key]
        pair = build()
        self.builds += 1
        size = pair_nbytes(pair)
        if self.budget_bytes is None or self.held_bytes + size <= self.budget_bytes:
            self._pairs[key] = pair
            self.held_bytes += size
        return pair
