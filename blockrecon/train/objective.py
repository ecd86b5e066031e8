"""What training minimises: supervised (image against a reference) or self-supervised (k-space
against held-out samples), through one training loop.

An objective gives the loop its view of the data (:meth:`data`) and the loss of one pair
(``objective(model, pair)``). :class:`Supervised` compares ``model(y, E)`` with the pair's
reference image. :class:`SelfSupervised` splits every acquisition's readouts
(:mod:`blockrecon.train.kspace_split`), reconstructs from one set and compares ``E_Lambda x``
with the other, so that training needs no reference image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from blockrecon.losses import normalized_l1_l2, relative_l2
from blockrecon.train.cache import PairCache
from blockrecon.train.data import TrainingPair
from blockrecon.train.kspace_split import KspaceSplits, check_loss_fraction

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Seed offset of the validation splits, so that they differ from the training splits.
VALIDATION_SEED_OFFSET = 1_000_003


class Objective(Protocol):
    """A training objective (see the module docstring)."""

    def data(
        self, dataset: Dataset, seed: int, validation: bool = False
    ) -> Dataset:  # pragma: no cover - protocol
        ...

    def __call__(self, model: nn.Module, pair: TrainingPair) -> torch.Tensor:  # pragma: no cover
        ...

    def describe(self) -> dict:  # pragma: no cover - protocol
        ...


@dataclass(frozen=True)
class Supervised:
    """``loss(model(y, E), target)`` (default relative L2) on pairs with a reference image."""

    loss: Loss = relative_l2

    def data(self, dataset: Dataset, seed: int, validation: bool = False) -> Dataset:
        """The dataset itself."""
        return dataset

    def __call__(self, model: nn.Module, pair: TrainingPair) -> torch.Tensor:
        if pair.target is None:
            raise ValueError(
                "supervised training needs a reference image and this pair has none; "
                "train self-supervised instead"
            )
        return self.loss(model(pair.kspace, pair.op), pair.target)

    def describe(self) -> dict:
        """JSON-able settings (empty: the default objective of older runs)."""
        return {}


@dataclass(frozen=True)
class SelfSupervised:
    """SSDU: ``loss(E_Lambda model(y_Theta, E_Theta), y_Lambda)`` over k-space splits.

    Attributes:
        loss_fraction: fraction of each acquisition's readouts held out for the loss, in (0, 1).
        splits: seeded splits per acquisition (the dataset grows by this factor).
        loss: k-space loss (default :func:`~blockrecon.losses.normalized_l1_l2`).
    """

    loss_fraction: float = 0.4
    splits: int = 1
    loss: Loss = normalized_l1_l2

    def __post_init__(self) -> None:
        check_loss_fraction(self.loss_fraction)
        if not (isinstance(self.splits, int) and self.splits >= 1):
            raise ValueError(f"splits must be a positive integer, got {self.splits!r}")

    def data(self, dataset: Dataset, seed: int, validation: bool = False) -> Dataset:
        """``splits`` splits of every pair (:class:`~blockrecon.train.kspace_split.KspaceSplits`);
        one fixed split per pair, drawn from another seed, for validation. A dataset with a
        :class:`~blockrecon.train.cache.PairCache` (``dataset.cache``) shares it with its
        splits, so that its memory budget covers both."""
        cache = getattr(dataset, "cache", None)
        cache = cache if isinstance(cache, PairCache) else None
        if validation:
            return KspaceSplits(
                dataset, self.loss_fraction, 1, seed + VALIDATION_SEED_OFFSET, cache=cache
            )
        return KspaceSplits(dataset, self.loss_fraction, self.splits, seed, cache=cache)

    def __call__(self, model: nn.Module, pair: TrainingPair) -> torch.Tensor:
        if pair.heldout is None:
            raise ValueError(
                "self-supervised training needs pairs with held-out samples (KspaceSplits)"
            )
        image = model(pair.kspace, pair.op)
        return self.loss(pair.heldout.op(image), pair.heldout.kspace)

    def describe(self) -> dict:
        """JSON-able settings, stored with a run and compared on resume."""
        return {
            "objective": "self_supervised",
            "loss_fraction": self.loss_fraction,
            "splits": self.splits,
            "loss": getattr(self.loss, "__name__", type(self.loss).__name__),
        }
