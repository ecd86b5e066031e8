"""Sparse ULM network: runs on the informative sites only and prunes between upsamplings."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from blockrecon.sparse import SparseTensor, cat, prune
from blockrecon.ulm.nets.architecture import UlmNet, UlmNetConfig


def occupancy_keep(logits: SparseTensor, keep_keys: torch.Tensor | None = None) -> torch.Tensor:
    """Bool (N,) sites to keep: occupancy sigmoid(logit) > 0.5, plus the most likely site of
    every batch item that has sites, so that no item ever becomes empty, plus the sites whose
    linear keys (``SparseTensor.keys``) are in ``keep_keys`` (sorted int64, e.g. the occupied
    target cells at this scale during training)."""
    scores = logits.feats[:, 0].detach()
    keep = scores > 0
    if keep_keys is not None and keep_keys.numel():
        site_keys = logits.keys()
        pos = torch.searchsorted(keep_keys, site_keys).clamp_(max=keep_keys.numel() - 1)
        keep |= keep_keys[pos] == site_keys
    batch = logits.coords[:, 0]
    best = scores.new_full((logits.batch_size,), float("-inf"))
    best = best.scatter_reduce(0, batch, scores, reduce="amax")
    first_best = torch.zeros_like(keep)
    hits = (scores == best[batch]).nonzero().squeeze(1)
    # one site per item even with ties: the first hit of each batch index
    first = torch.ones_like(hits, dtype=torch.bool)
    first[1:] = batch[hits[1:]] != batch[hits[:-1]]
    first_best[hits[first]] = True
    return keep | first_best


class SparseUlmNet(UlmNet):
    """Sparse twin of :class:`~blockrecon.ulm.nets.dense.DenseUlmNet` (same parameters).

    ``forward(x)``: x a :class:`SparseTensor` with 2 channels on a (T, *S) grid (e.g.
    ``SparseTensor.from_dense(block, threshold=0.01)``) -> dict {scale: SparseTensor of
    1-channel logits on that stage's sites, grid (T, *(scale * S))}. Sites never reached count
    as occupancy 0. After the heads at scales 1, 2 and 4 the sites with occupancy <= 0.5 are
    dropped (see :func:`occupancy_keep`) unless ``prune=False``; then, on a fully active input,
    the outputs equal the dense network's at every site.

    ``forward(x, keep_keys)``: ``keep_keys`` ({scale: sorted int64 keys of the (B, T,
    *(scale * S)) grid}, e.g. ``OccupancyTargets.keys``) are never pruned. Training passes the
    target cells, so the fine stages see every bubble from the first step instead of only the
    sites an untrained coarse head already believes in (as in generative sparse completion
    networks); inference passes nothing.
    """

    mode = "sparse"

    def __init__(self, config: UlmNetConfig | None = None, prune: bool = True):
        super().__init__(config)
        self.prune_sites = prune

    def forward(
        self, x: SparseTensor, keep_keys: Mapping[int, torch.Tensor] | None = None
    ) -> dict[int, SparseTensor]:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"input must be a SparseTensor, got {type(x).__name__}")
        self.check_grid((x.batch_size, x.num_channels), x.spatial_shape)
        return self._run(x, keep_keys)

    def _cat(self, a, b):
        return cat([a, b])

    def _prune(self, x, logits, keep_keys):
        if not self.prune_sites:
            return x
        return prune(x, occupancy_keep(logits, keep_keys))

    def _squeeze_head(self, logits):
        return logits
