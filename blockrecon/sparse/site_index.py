"""Finding active sites by grid position: the row of each queried site, or -1 where none is.

A :class:`SiteIndex` numbers the sites of one coordinate set on a *padded* grid: ``pad_low[i]``
cells before and ``pad_high[i]`` after every grid dimension, per batch item. A neighbour query
``padded key + delta`` of a shift within the padding then never wraps into another row or batch
item: a shift that leaves the grid lands on a padding cell, where no site is. So kernel maps
need no bounds checks.

Two lookups, with identical results:

- ``"dense"``: a flat int32 table over the padded grid (site row, -1 where empty): one gather
  per query. Used when the padded grid has at most ``max(DENSE_CELLS, DENSE_CELLS_PER_SITE * N)``
  cells (e.g. 130^3 cells = 8.8 MB for a 128^3 grid).
- ``"sorted"``: binary search (``torch.searchsorted``) in the sorted padded keys, for grids too
  large for a table next to few sites (e.g. the 8x finer ULM grids).

Indexes are cached in the tensor's ``cache`` (shared by every tensor on the same sites) under
their padding, so all layers on one site set share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from blockrecon.sparse.tensor import SparseTensor

#: A dense table is always used up to this many cells (16 MiB of int32).
DENSE_CELLS = 2**22
#: ... and beyond, while the grid has at most this many cells per active site.
DENSE_CELLS_PER_SITE = 64
LOOKUPS = ("dense", "sorted")


@dataclass(eq=False)
class SiteIndex:
    """Rows of the sites of one coordinate set, looked up by padded linear key.

    Attributes:
        padded_keys: int64 (N,) row-major keys of the sites in the padded (B, *(S + pads))
            grid, increasing with the row.
        weights: per-dimension key step (int), so a shift ``s`` moves a key by
            ``sum(s[i] * weights[i])``.
        lookup_kind: ``"dense"`` or ``"sorted"``.
        table: int32 (B * prod(S + pads),) site rows, -1 where empty (dense lookup only).
    """

    padded_keys: torch.Tensor
    weights: tuple[int, ...]
    lookup_kind: str
    table: torch.Tensor | None = None

    def delta(self, shift) -> int:
        """Key step of a per-dimension shift (ints, each within the padding)."""
        return sum(int(s) * w for s, w in zip(shift, self.weights, strict=True))

    def rows(self, queries: torch.Tensor) -> torch.Tensor:
        """int64 row of the site at each padded key of ``queries`` (any shape), -1 where no
        site is. Queries must lie in the padded grid."""
        if self.lookup_kind == "dense":
            return self.table.take(queries).to(torch.int64)
        keys = self.padded_keys
        if keys.numel() == 0:
            return torch.full_like(queries, -1)
        pos = torch.searchsorted(keys, queries).clamp_(max=keys.numel() - 1)
        return torch.where(keys.take(pos) == queries, pos, -1)


def site_index(x: SparseTensor, pad_low, pad_high, lookup: str | None = None) -> SiteIndex:
    """The (cached) :class:`SiteIndex` of ``x``'s sites for this padding (D ints >= 0 each).

    ``lookup`` forces ``"dense"`` or ``"sorted"``; default: by grid size (module docstring).
    """
    pad_low, pad_high = tuple(int(p) for p in pad_low), tuple(int(p) for p in pad_high)
    if len(pad_low) != x.ndim or len(pad_high) != x.ndim or min(pad_low + pad_high) < 0:
        raise ValueError(f"padding must be {x.ndim} ints >= 0 before and after each dimension")
    if lookup is not None and lookup not in LOOKUPS:
        raise ValueError(f"lookup must be one of {LOOKUPS}, got {lookup!r}")
    padded = tuple(s + a + b for s, a, b in zip(x.spatial_shape, pad_low, pad_high, strict=True))
    cells = x.batch_size * math.prod(padded)
    if lookup is None:
        small = cells <= max(DENSE_CELLS, DENSE_CELLS_PER_SITE * x.num_sites)
        lookup = "dense" if small and cells < 2**31 else "sorted"
    if lookup == "dense" and cells >= 2**31:
        raise ValueError(f"a dense site table of {cells} cells is too large for int32")
    key = ("site_index", pad_low, pad_high, lookup)
    if key not in x.cache:
        x.cache[key] = _build(x, pad_low, padded, cells, lookup)
    return x.cache[key]


def _build(x: SparseTensor, pad_low, padded, cells: int, lookup: str) -> SiteIndex:
    weights = tuple(math.prod(padded[i + 1 :]) for i in range(x.ndim))
    keys = x.coords[:, 0] * math.prod(padded)
    for i, w in enumerate(weights):
        keys = keys + (x.coords[:, i + 1] + pad_low[i]) * w
    table = None
    if lookup == "dense":
        table = torch.full((cells,), -1, dtype=torch.int32, device=x.device)
        table[keys] = torch.arange(x.num_sites, dtype=torch.int32, device=x.device)
    return SiteIndex(keys, weights, lookup, table)
