"""Self-supervised learning via data undersampling (SSDU): splitting an acquisition's samples.

Yaman et al., "Self-supervised learning of physics-guided reconstruction neural networks without
fully sampled reference data", Magn. Reson. Med. 84:3172-3191 (2020). The readouts of each
acquisition (whole spokes: the first sample axis of a trajectory with two or more sample axes;
single samples when there is one) are split at random into a data-consistency set ``Theta`` and
a held-out loss set ``Lambda`` with ``|Lambda| = round(loss_fraction * readouts)``. The network
reconstructs from ``Theta``; its image ``x`` is compared with the measured samples of ``Lambda``
through ``E_Lambda x`` (:func:`blockrecon.losses.normalized_l1_l2`). At inference every sample
goes to data consistency.

The operator of ``Theta`` is renormalized to unit norm, as the full operator is
(:func:`blockrecon.inference.normalize`): ``E_Theta`` and ``y_Theta`` are scaled by the same
factor, which leaves the least-squares image, and so the image's scale, unchanged, while the
network's data-consistency steps see the spectrum they see at inference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from blockrecon.inference import POWER_ITERATIONS
from blockrecon.physics import Sense, max_eigenvalue
from blockrecon.train.cache import PairCache
from blockrecon.train.data import HeldOutSamples, TrainingPair

__all__ = [
    "KspaceSplits",
    "check_loss_fraction",
    "held_out_count",
    "split_pair",
    "split_readouts",
]


def check_loss_fraction(loss_fraction: float) -> float:
    """``loss_fraction`` as a float in the open interval (0, 1), else ``ValueError``."""
    if not (isinstance(loss_fraction, int | float) and 0 < loss_fraction < 1):
        raise ValueError(f"the loss fraction must lie in (0, 1), got {loss_fraction!r}")
    return float(loss_fraction)


def held_out_count(n_readouts: int, loss_fraction: float, name: str = "the acquisition") -> int:
    """Readouts held out of ``n_readouts``: ``round(loss_fraction * n_readouts)``; raises
    ``ValueError`` (naming ``name``) when either set would be empty."""
    n_loss = round(check_loss_fraction(loss_fraction) * n_readouts)
    if not 1 <= n_loss <= n_readouts - 1:
        raise ValueError(
            f"{name}: a loss fraction of {loss_fraction} of its {n_readouts} readouts leaves "
            "an empty data-consistency or loss set; self-supervised training needs at least "
            "one readout in each"
        )
    return n_loss


def split_readouts(
    n_readouts: int, loss_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random split of ``range(n_readouts)``: sorted int64 indices ``(keep, held_out)``, the
    held-out set of :func:`held_out_count` readouts drawn uniformly with ``generator``."""
    n_loss = held_out_count(n_readouts, loss_fraction)
    order = torch.randperm(n_readouts, generator=generator)
    return order[n_loss:].sort().values, order[:n_loss].sort().values


def readouts_of(op: Sense) -> int:
    """Number of readouts of an operator's trajectory (the first sample axis)."""
    return op.nufft.sample_shape[0]


def _restricted(
    op: Sense, index: torch.Tensor, maps: torch.Tensor, data_consistency: bool
) -> Sense:
    """``op`` with ``maps`` on the readouts ``index`` of its first sample axis: with its sample
    weights cut alike and a Toeplitz normal for ``data_consistency``, else a forward-only
    operator (no weights: they enter only the normal equations)."""
    weights = op.weights if data_consistency else None
    if weights is not None:
        weights = weights.expand(op.nufft.sample_shape)[index]
    return Sense(
        maps,
        op.nufft.coord[index],
        weights=weights,
        backend=op.nufft.backend,
        normal="toeplitz" if data_consistency else "pair",
        eps=op.nufft.eps,
    )


def split_pair(
    pair: TrainingPair, loss_fraction: float, generator: torch.Generator
) -> TrainingPair:
    """The pair reduced to its data-consistency readouts, with the others held out.

    Args:
        pair: a (normalized) :class:`~blockrecon.train.data.TrainingPair`, k-space
            ``(coils, readouts, ...)``.
        loss_fraction: fraction of the readouts held out, in (0, 1).
        generator: draws the split.

    Returns:
        A pair whose ``kspace`` and ``op`` hold the kept readouts (the operator renormalized to
        unit norm, see the module docstring), whose ``heldout`` holds the others with the
        pair's own operator scale, and with the pair's ``target`` and ``intensity_scale``.
    """
    device = pair.kspace.device
    keep, held = split_readouts(readouts_of(pair.op), loss_fraction, generator)
    keep, held = keep.to(device), held.to(device)
    maps = pair.op.maps.detach().clone()
    dc_op = _restricted(pair.op, keep, maps, data_consistency=True)
    scale = max_eigenvalue(dc_op, n_iter=POWER_ITERATIONS) ** -0.5
    maps.mul_(scale)  # dc_op.maps is this tensor; its Toeplitz kernel does not depend on it
    heldout = HeldOutSamples(
        pair.kspace[:, held],
        _restricted(pair.op, held, pair.op.maps.detach(), data_consistency=False),
    )
    return TrainingPair(
        pair.kspace[:, keep] * scale, dc_op, pair.target, pair.intensity_scale, heldout
    )


def split_seed(seed: int, item: int, split: int) -> int:
    """The seed of split ``split`` of item ``item`` (independent streams per pair of indices)."""
    return int(np.random.SeedSequence([seed, item, split]).generate_state(1, np.uint64)[0] >> 1)


class KspaceSplits(Dataset):
    """``splits`` seeded k-space splits of every pair of a dataset (:func:`split_pair`).

    Item ``i * splits + k`` is split ``k`` of source item ``i``, drawn from
    :func:`split_seed` ``(seed, i, k)``: the same on every run, process and epoch, so training
    resumes exactly. Splits are built on first access and kept in ``cache``.

    Args:
        source: dataset of normalized :class:`~blockrecon.train.data.TrainingPair`.
        loss_fraction: fraction of each pair's readouts held out, in (0, 1).
        splits: splits per pair (positive).
        seed: seed of the splits.
        cache: where built splits are kept: a :class:`~blockrecon.train.cache.PairCache`
            (e.g. the source's, so that one memory budget covers both), ``None`` for a cache of
            its own without limit, ``False`` to keep none.
    """

    def __init__(
        self,
        source: Dataset,
        loss_fraction: float = 0.4,
        splits: int = 1,
        seed: int = 0,
        cache: PairCache | None | bool = None,
    ) -> None:
        check_loss_fraction(loss_fraction)
        if not (isinstance(splits, int) and splits >= 1):
            raise ValueError(f"splits must be a positive integer, got {splits!r}")
        self.source, self.loss_fraction = source, loss_fraction
        self.splits, self.seed = splits, seed
        if cache is None or cache is True:
            cache = PairCache()
        self.cache = PairCache(budget_bytes=0) if cache is False else cache
        self._key = object()  # this view's keys in a cache it may share

    def __len__(self) -> int:
        return len(self.source) * self.splits

    def __getitem__(self, index: int) -> TrainingPair:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} splits")
        return self.cache.get((self._key, index), lambda: self._build(index))

    def _build(self, index: int) -> TrainingPair:
        item, split = divmod(index, self.splits)
        generator = torch.Generator().manual_seed(split_seed(self.seed, item, split))
        return split_pair(self.source[item], self.loss_fraction, generator)
