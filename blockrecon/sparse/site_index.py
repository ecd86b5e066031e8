"""Finding active sites by grid position: the row of each queried site, or N where none is.

A :class:`SiteIndex` numbers the sites of one coordinate set on a *padded* grid: ``pad_low[i]``
cells before and ``pad_high[i]`` after every grid dimension, per batch item. A neighbour query
``padded key + delta`` of a shift within the padding then never wraps into another row or batch
item: a shift that leaves the grid lands on a padding cell, where no site is. So kernel maps
need no bounds checks.

Three lookups, with identical results; with ``limit = max(DENSE_CELLS, DENSE_CELLS_PER_SITE *
N)``:

- ``"dense"`` (padded grid of at most ``limit`` cells, e.g. 130^3 = 8.8 MB of int32 for a 128^3
  grid): a bool occupancy table over the grid and an int32 table of site rows, written at
  the sites and filled with N elsewhere only when whole rows are looked up (the neighbour
  table of dense neighbourhoods). :meth:`SiteIndex.lookup` reads the occupancy, a quarter
  of the size and so mostly in cache, and :meth:`SiteIndex.pairs` the rows only where a site
  is (measured, 1 thread, 1.36 M queries at 5% occupancy of 130^3: 1.1 ms for the bool
  gather, 4.1 ms for an int32 one; filling the table took as long as writing its sites).
- ``"paged"`` (at most ``limit`` pages of 2^PAGE_BITS cells, e.g. the 8x finer ULM grids: 60 M
  cells, 63 k sites): a page table (int32 page number per run of 2^PAGE_BITS cells of the
  linear key, 0 for the shared empty page) and the pages holding sites (int32 rows); two
  gathers per query, at most 2^PAGE_BITS int32 per site.
- ``"hash"`` (larger grids): an open-addressing hash table (linear probing, at most a quarter
  full: about 1.2 probes per query) built and probed with vectorized rounds. Which of two keys
  racing for a slot wins may vary (CUDA), the row found for a key never does.

A missing site reads as N (the number of sites), so that a lookup is directly a gather index
into features with a row of zeros appended. Indexes are cached in the tensor's ``cache``
(shared by every tensor on the same sites) under their padding, so all layers on one site set
share them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from blockrecon.sparse.tensor import SparseTensor

#: A dense table is always used up to this many cells (16 MiB of int32).
DENSE_CELLS = 2**22
#: ... and beyond, while the grid has at most this many cells per active site.
DENSE_CELLS_PER_SITE = 64
#: Sites per block of :meth:`SiteIndex.neighbour_rows` (the block's lookups, offset-major,
#: stay in cache until transposed into the site-major result).
ROW_CHUNK = 2**15
#: Queries of a paged or hashed lookup handled at a time: their temporaries stay in cache and
#: are reused, where whole-size ones (tens of millions of queries on the 8x grids of 3D ULM)
#: cost more in fresh pages than in arithmetic (a 32^3 ULM training step: 2.5 s of 6 s).
QUERY_CHUNK = 2**18
#: log2 of the cells per page of a paged lookup.
PAGE_BITS = 5
LOOKUPS = ("dense", "paged", "hash")
_EMPTY = -1


@dataclass(frozen=True, eq=False)
class Neighbours:
    """A neighbour lookup of every site (:meth:`SiteIndex.lookup`).

    Attributes:
        deltas: the key steps looked up, one per row.
        found: bool ``(len(deltas), N)``: whether a site is at ``padded key + delta``.
        rows: int32 ``(len(deltas), N)``, the row of that site (N where none), from lookups
            that read rows anyway (paged and hash); None where only the occupancy was read
            (dense: the rows of the hits are read by :meth:`SiteIndex.pairs`).
    """

    deltas: tuple[int, ...]
    found: torch.Tensor
    rows: torch.Tensor | None


@dataclass(eq=False)
class SiteIndex:
    """Rows of the sites of one coordinate set, looked up by padded linear key.

    Attributes:
        padded_keys: (N,) row-major keys of the sites in the padded (B, *(S + pads)) grid,
            increasing with the row; int32 for the dense and paged lookups, else int64.
        weights: per-dimension key step (int), so a shift ``s`` moves a key by
            ``sum(s[i] * weights[i])``.
        lookup_kind: ``"dense"``, ``"paged"`` or ``"hash"``.
        table: dense: int32 (B * prod(S + pads),) site rows where ``occupied``, elsewhere N
            once ``filled`` (written only at the sites at first, and filled by the first
            lookup of whole rows, :meth:`rows` or :meth:`neighbour_rows`); paged: int32 page
            number of each run of 2^PAGE_BITS cells (0: empty); hash: int64 (M,) the key held
            by each slot (-1: empty), M a power of two >= 4 N.
        rows_of: paged: int32 ((pages + 1) * 2^PAGE_BITS,) site rows of the pages (N where
            empty; page 0 empty); hash: int64 (M,) the row of the key in each slot.
        occupied: dense: bool (B * prod(S + pads),), True where a site is; else None.
        filled: whether the dense table holds N in its empty cells.
    """

    padded_keys: torch.Tensor
    weights: tuple[int, ...]
    lookup_kind: str
    table: torch.Tensor
    rows_of: torch.Tensor | None = None
    occupied: torch.Tensor | None = None
    filled: bool = False

    def delta(self, shift: Sequence[int]) -> int:
        """Key step of a per-dimension shift (ints, each within the padding)."""
        return sum(int(s) * w for s, w in zip(shift, self.weights, strict=True))

    def lookup(self, deltas: Sequence[int]) -> Neighbours:
        """Which sites are at ``padded key + delta`` of every site, for each key step of
        ``deltas`` (from :meth:`delta`, shifts within the padding); see :class:`Neighbours`."""
        if self.occupied is not None:
            return Neighbours(tuple(deltas), self._shifted(self.occupied, deltas), None)
        rows = self._offset_rows(deltas)
        return Neighbours(tuple(deltas), rows < self.padded_keys.numel(), rows)

    def pairs(self, found: Neighbours) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (delta, site) pairs of ``found`` that find a site as ``(which, sites, rows)``,
        ordered by delta index, then site: int64 index into its deltas, int64 row of the
        querying site, int32 row of the site found."""
        n = self.padded_keys.numel()
        positions = found.found.reshape(-1).nonzero().squeeze(1)
        which = torch.div(positions, max(n, 1), rounding_mode="floor")
        sites = positions - which * n
        if found.rows is not None:
            return which, sites, found.rows.reshape(-1).index_select(0, positions)
        keys = self.padded_keys.index_select(0, sites)
        keys += self._steps(found.deltas).index_select(0, which)
        if self.lookup_kind == "dense":
            return which, sites, self.table.index_select(0, keys)
        return which, sites, self.rows(keys)

    def neighbour_rows(
        self, deltas: Sequence[int], first: Neighbours | None = None
    ) -> torch.Tensor:
        """int32 ``(N, len(deltas))``: the row of the site at ``padded key + delta`` of every
        site, N where none is (deltas as in :meth:`lookup`). ``first``: a lookup of the
        leading deltas, whose rows are reused where it has them."""
        n = self.padded_keys.numel()
        if self.occupied is None:
            out = torch.empty(n, len(deltas), dtype=torch.int32, device=self.table.device)
            done = 0
            if first is not None and first.rows is not None:
                if first.deltas == tuple(deltas[: len(first.deltas)]):
                    done = len(first.deltas)
                    out[:, :done] = first.rows.T
            if done < len(deltas):
                steps = self._steps(deltas[done:])[None, :]
                block = max(1, QUERY_CHUNK // steps.numel())
                for start in range(0, n, block):  # site-major queries, a block at a time
                    keys = self.padded_keys[start : start + block, None]
                    out[start : start + block, done:] = self.rows(keys + steps)
            return out
        self._fill_table()
        out = torch.empty(n, len(deltas), dtype=torch.int32, device=self.table.device)
        for start in range(0, n, ROW_CHUNK):  # site-major through a cache-sized buffer
            rows = self._shifted(self.table, deltas, self.padded_keys[start : start + ROW_CHUNK])
            out[start : start + ROW_CHUNK] = rows.T
        return out

    def _offset_rows(self, deltas: Sequence[int]) -> torch.Tensor:
        """:meth:`rows` of ``padded key + delta`` ``(len(deltas), N)``, the query keys formed
        for a block of sites at a time (huge grids: no query array of the full size)."""
        n = self.padded_keys.numel()
        steps = self._steps(deltas)[:, None]
        out = torch.empty(len(deltas), n, dtype=torch.int32, device=self.table.device)
        block = max(1, QUERY_CHUNK // len(deltas))
        for start in range(0, n, block):
            keys = self.padded_keys[start : start + block]
            out[:, start : start + keys.numel()] = self.rows(keys[None, :] + steps)
        return out

    def _steps(self, deltas: Sequence[int]) -> torch.Tensor:
        return torch.tensor(deltas, dtype=self.padded_keys.dtype, device=self.table.device)

    def _shifted(
        self, cells: torch.Tensor, deltas: Sequence[int], keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``cells[key + delta]`` ``(len(deltas), len(keys))`` (default keys: every site's):
        one gather per delta from the shifted view ``cells[delta - low:]`` at ``key + low``
        (``low = min(deltas)``), so that no query keys are formed."""
        low = min(deltas)
        base = (self.padded_keys if keys is None else keys) + low
        out = torch.empty(len(deltas), base.numel(), dtype=cells.dtype, device=cells.device)
        for j, step in enumerate(deltas):
            torch.index_select(cells[step - low :], 0, base, out=out[j])
        return out

    def _fill_table(self) -> None:
        """Write N into the dense table's empty cells (once; only full-row lookups need it)."""
        if not self.filled:
            self.table.masked_fill_(self.occupied.logical_not(), self.padded_keys.numel())
            self.filled = True

    def rows(self, queries: torch.Tensor) -> torch.Tensor:
        """int32 row of the site at each padded key of ``queries`` (any shape, the dtype of
        ``padded_keys``), N (the number of sites) where none is. Queries must lie in the padded
        grid."""
        flat = queries.reshape(-1)
        if self.lookup_kind == "dense":
            self._fill_table()
            return self.table.index_select(0, flat).reshape(queries.shape)
        if self.lookup_kind == "paged":
            out = torch.empty_like(flat, dtype=torch.int32)
            for start in range(0, flat.numel(), QUERY_CHUNK):
                part = flat[start : start + QUERY_CHUNK]
                slots = self.table.index_select(0, part >> PAGE_BITS)
                slots.bitwise_left_shift_(PAGE_BITS).bitwise_or_(part & (2**PAGE_BITS - 1))
                torch.index_select(self.rows_of, 0, slots, out=out[start : start + QUERY_CHUNK])
            return out.reshape(queries.shape)
        result = torch.full_like(flat, self.padded_keys.numel())
        mask = self.table.numel() - 1
        active = torch.arange(flat.numel(), device=flat.device)
        slots = _hash(flat, mask)
        wanted = flat
        while active.numel():
            held = self.table.index_select(0, slots)
            hit = (held == wanted).nonzero().squeeze(1)
            rows = self.rows_of.index_select(0, slots.index_select(0, hit))
            result.index_copy_(0, active.index_select(0, hit), rows)
            more = ((held != wanted) & (held != _EMPTY)).nonzero().squeeze(1)
            active, wanted = active.index_select(0, more), wanted.index_select(0, more)
            slots = (slots.index_select(0, more) + 1) & mask
        return result.to(torch.int32).reshape(queries.shape)


def site_index(
    x: SparseTensor, pad_low: Sequence[int], pad_high: Sequence[int], lookup: str | None = None
) -> SiteIndex:
    """The (cached) :class:`SiteIndex` of ``x``'s sites for this padding (D ints >= 0 each).

    ``lookup`` forces ``"dense"``, ``"paged"`` or ``"hash"``; default: by grid size (module
    docstring).
    """
    pad_low, pad_high = tuple(int(p) for p in pad_low), tuple(int(p) for p in pad_high)
    if len(pad_low) != x.ndim or len(pad_high) != x.ndim or min(pad_low + pad_high) < 0:
        raise ValueError(f"padding must be {x.ndim} ints >= 0 before and after each dimension")
    if lookup is not None and lookup not in LOOKUPS:
        raise ValueError(f"lookup must be one of {LOOKUPS}, got {lookup!r}")
    padded = tuple(s + a + b for s, a, b in zip(x.spatial_shape, pad_low, pad_high, strict=True))
    cells = x.batch_size * math.prod(padded)
    limit = max(DENSE_CELLS, DENSE_CELLS_PER_SITE * x.num_sites)
    pages = -(-cells // 2**PAGE_BITS)
    if lookup is None:
        lookup = "dense" if cells <= limit else "paged" if pages <= limit else "hash"
    if lookup in ("dense", "paged") and max(cells, x.num_sites << PAGE_BITS) >= 2**31:
        raise ValueError(f"a {lookup} site table of {cells} cells is too large for int32")
    key = ("site_index", pad_low, pad_high, lookup)
    if key not in x.cache:
        x.cache[key] = _build(x, pad_low, padded, cells, lookup)
    return x.cache[key]


def _build(x: SparseTensor, pad_low, padded, cells: int, lookup: str) -> SiteIndex:
    weights = tuple(math.prod(padded[i + 1 :]) for i in range(x.ndim))
    keys = x.coords[:, 0] * math.prod(padded)
    for i, w in enumerate(weights):
        keys = keys + (x.coords[:, i + 1] + pad_low[i]) * w
    if lookup == "hash":
        return SiteIndex(keys, weights, lookup, *_hash_table(keys))
    if lookup == "paged":
        return SiteIndex(keys.to(torch.int32), weights, lookup, *_paged_table(keys, cells))
    table = torch.empty(cells, dtype=torch.int32, device=x.device)
    table.scatter_(0, keys, torch.arange(x.num_sites, dtype=torch.int32, device=x.device))
    occupied = torch.zeros(cells, dtype=torch.bool, device=x.device)
    occupied.index_fill_(0, keys, True)
    return SiteIndex(keys.to(torch.int32), weights, lookup, table, occupied=occupied)


def _paged_table(keys: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(page table, pages) of a paged lookup holding ``keys`` (sorted, unique, >= 0)."""
    int32 = {"dtype": torch.int32, "device": keys.device}
    pages, page_rows = torch.unique_consecutive(keys >> PAGE_BITS, return_inverse=True)
    table = torch.zeros(-(-cells // 2**PAGE_BITS), **int32)
    table.index_copy_(0, pages, torch.arange(1, pages.numel() + 1, **int32))
    rows_of = torch.full(((pages.numel() + 1) << PAGE_BITS,), keys.numel(), **int32)
    slots = ((page_rows + 1) << PAGE_BITS) | (keys & (2**PAGE_BITS - 1))
    rows_of.index_copy_(0, slots, torch.arange(keys.numel(), **int32))
    return table, rows_of


def _hash(keys: torch.Tensor, mask: int) -> torch.Tensor:
    """Slot of each key (int64 >= 0) in a table of ``mask + 1`` (a power of two) slots:
    multiplicative (Fibonacci) hashing of the low 31 bits (the top bits of a 32-bit product),
    xor the high bits; no product exceeds int64."""
    shift = max(32 - mask.bit_length(), 0)
    mixed = ((keys & 0x7FFFFFFF) * 2654435761 & 0xFFFFFFFF) >> shift
    return (mixed ^ (keys >> 31) * 40503) & mask


def _hash_table(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(slot keys, slot rows) of an open-addressing table holding ``keys`` (unique, >= 0)."""
    size = 16
    while size < 4 * keys.numel():
        size *= 2
    mask = size - 1
    table = torch.full((size,), _EMPTY, dtype=torch.int64, device=keys.device)
    slot_rows = torch.full((size,), -1, dtype=torch.int64, device=keys.device)
    pending = torch.arange(keys.numel(), device=keys.device)
    wanted = keys
    slots = _hash(keys, mask)
    while pending.numel():
        free = (table.index_select(0, slots) == _EMPTY).nonzero().squeeze(1)
        # keys racing for one slot: one of them lands
        table.index_copy_(0, slots.index_select(0, free), wanted.index_select(0, free))
        won = table.index_select(0, slots) == wanted
        placed = won.nonzero().squeeze(1)
        slot_rows.index_copy_(0, slots.index_select(0, placed), pending.index_select(0, placed))
        lost = (~won).nonzero().squeeze(1)
        pending, wanted = pending.index_select(0, lost), wanted.index_select(0, lost)
        slots = (slots.index_select(0, lost) + 1) & mask
    return table, slot_rows
