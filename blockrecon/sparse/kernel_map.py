"""Kernel maps: for each kernel offset, the (input site, output site) pairs it connects.

Three kinds, all matching dense torch indexing (kernel offset k = row-major index over the
kernel, per-dimension stride s, dilation d, padding p):

- ``"submanifold"``: output sites = input sites; out[y] += W[k] x[y + k*d - left] with torch's
  padding='same' (left = d*(K-1)//2). Needs stride 1.
- ``"conv"``: out[c] += W[k] x[c*s + k*d - p] on the grid of torch's conv output shape; output
  sites = every coarse site reached by at least one active input (for kernel == stride: the
  coarse sites with an active child).
- ``"transpose"``: out[x*s + k*d - p] += W[k] x[x] (torch conv_transpose); output sites = every
  site reached (for kernel == stride: all children of the active sites).

Within one offset every input and every output site appears at most once, so accumulating
offset by offset with index_add_ is deterministic on CPU and CUDA whatever the thread count.

Submanifold maps look neighbours up in a :class:`~blockrecon.sparse.site_index.SiteIndex` (a
dense table, a paged table or a hash of the padded site keys; no bounds checks): first which
(site, offset) pairs find a site (``SiteIndex.lookup``, a bool table), then the rows of
those only (``SiteIndex.pairs``). For odd kernels only half the offsets are looked up when the
neighbourhoods are sparse (offset k and K-1-k connect the same pairs, swapped). Dense
neighbourhoods (at least TABLE_FILL of the sites x kernel table) get the neighbour-table form
(see :class:`KernelMap`, ``SiteIndex.neighbour_rows``). Strided convolutions
whose windows tile the grid (kernel == stride, pooling) map each input to its one window;
other strided and transposed maps take all offsets at once and number the output sites with
one ``torch.unique``.

Maps, and the site indexes under them, are cached in the input tensor's ``cache`` (shared by
every tensor on the same sites) under their full geometry: every layer on one site set
reuses them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import torch

from blockrecon.sparse.site_index import site_index
from blockrecon.sparse.tensor import SparseTensor, decode_keys, linear_keys

KINDS = ("submanifold", "conv", "transpose")


def as_tuple(value, ndim: int, name: str, minimum: int) -> tuple[int, ...]:
    """Per-dimension int tuple from an int or a sequence of ``ndim`` ints >= ``minimum``."""
    values = (value,) * ndim if isinstance(value, int) else tuple(value)
    if len(values) != ndim or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{name} must be an int or {ndim} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name} entries must be >= {minimum}, got {value!r}")
    return values


@dataclass(frozen=True)
class Geometry:
    """Kernel geometry (per-dimension tuples) of one kind of map."""

    kind: str
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]

    @property
    def volume(self) -> int:
        return math.prod(self.kernel_size)

    def offsets(self) -> list[tuple[int, ...]]:
        """Kernel indices in row-major order (the weight's first axis)."""
        return list(itertools.product(*(range(k) for k in self.kernel_size)))

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output grid shape, as torch's conv / conv_transpose would give it."""
        if self.kind == "submanifold":
            return shape
        dims = zip(
            shape,
            self.kernel_size,
            self.stride,
            self.dilation,
            self.padding,
            self.output_padding,
            strict=True,
        )
        if self.kind == "conv":
            out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, d, p, _ in dims)
        else:
            out = tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 + op for n, k, s, d, p, op in dims)
        if any(n < 1 for n in out):
            raise ValueError(
                f"{self.kind} with kernel {self.kernel_size}, stride {self.stride}, "
                f"dilation {self.dilation}, padding {self.padding} leaves an empty "
                f"grid for input shape {shape}"
            )
        return out

    def out_stride(self, stride: tuple) -> tuple:
        """Site size of the output in reference-grid units."""
        if self.kind == "conv":
            return tuple(a * s for a, s in zip(stride, self.stride, strict=True))
        if self.kind == "transpose":
            out = (Fraction(a) / s for a, s in zip(stride, self.stride, strict=True))
            return tuple(int(v) if v.denominator == 1 else v for v in out)
        return stride


def make_geometry(
    kind: str, ndim: int, kernel_size, stride=1, dilation=1, padding=0, output_padding=0
) -> Geometry:
    """Validated :class:`Geometry` for ``ndim`` spatial dimensions."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    geometry = Geometry(
        kind,
        as_tuple(kernel_size, ndim, "kernel_size", 1),
        as_tuple(stride, ndim, "stride", 1),
        as_tuple(dilation, ndim, "dilation", 1),
        as_tuple(padding, ndim, "padding", 0),
        as_tuple(output_padding, ndim, "output_padding", 0),
    )
    if kind == "submanifold" and (any(s != 1 for s in geometry.stride) or any(geometry.padding)):
        raise ValueError("a submanifold map has stride 1 and implicit 'same' padding")
    if kind != "transpose" and any(geometry.output_padding):
        raise ValueError("output_padding applies to transposed convolution only")
    return geometry


@dataclass(frozen=True, eq=False)
class PackedPairs:
    """Every pair of a kernel map in two int64 arrays, offsets in increasing order.

    ``segments`` holds (offset index, start, stop) per connecting offset, in increasing offset
    order: its pairs are ``in_idx[start:stop]``, ``out_idx[start:stop]``; start and stop are
    None for the identity (every site to itself, kept out of the arrays). Within a segment every
    input and every output row appears at most once.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    segments: tuple[tuple[int, int | None, int | None], ...]

    def chunks(self, max_pairs: int) -> list[list[tuple[int, int | None, int | None]]]:
        """Consecutive segments grouped into runs of at most ``max_pairs`` pairs (a larger
        segment alone; the identity always alone), in offset order."""
        groups: list[list] = []
        size = max_pairs + 1
        for segment in self.segments:
            _, start, stop = segment
            if start is None:
                groups.append([segment])
                size = max_pairs + 1
                continue
            if size + stop - start > max_pairs:
                groups.append([])
                size = 0
            groups[-1].append(segment)
            size += stop - start
        return groups


@dataclass(eq=False)
class KernelMap:
    """Input->output site pairs per kernel offset, and the output sites, in one of two forms:

    - pairs (``pairs``, :class:`PackedPairs`): the pairs of every offset, for sparse
      neighbourhoods;
    - neighbour table (``neighbours``, submanifold maps of odd kernels only): int32
      (num_out, K), the input row each output site takes through each offset, ``num_in``
      where there is none; for dense neighbourhoods (a convolution is then one gather and one
      matrix product, see :mod:`.conv`).

    ``entries`` lists (offset index, in_idx, out_idx) for the offsets that connect any pair, in
    increasing offset order; in_idx/out_idx are int64 (P_k,) row indices, or None for the
    identity (every site to itself, the centre of a submanifold kernel). Derived on first use
    from either form.

    ``out_cache`` is the cache of the output sites, or None where they are the input's sites
    (submanifold maps: :meth:`output` then shares the input's cache). The map is itself kept
    in its input's cache, so holding that cache here would make a reference cycle: every site
    set, with its maps and site indexes (gigabytes on the 8x grids of 3D ULM), would then live
    until Python's cyclic garbage collector ran, not until its last tensor went (measured: a
    32^3 ULM training step's peak memory 8-12 GiB instead of 3-5 GiB).
    """

    geometry: Geometry
    num_in: int
    out_coords: torch.Tensor
    out_spatial_shape: tuple[int, ...]
    out_cache: dict | None = field(repr=False)
    pairs: PackedPairs | None = field(default=None, repr=False)
    neighbours: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def from_entries(
        cls,
        geometry: Geometry,
        entries: Sequence[tuple[int, torch.Tensor | None, torch.Tensor | None]],
        num_in: int,
        out_coords: torch.Tensor,
        out_spatial_shape: Sequence[int],
        out_cache: dict | None,
    ) -> KernelMap:
        """Map in pairs form from per-offset (offset index, in rows, out rows) entries in
        increasing offset order (None rows: identity; entries without pairs are dropped)."""
        kept = [e for e in entries if e[1] is None or e[1].numel()]
        pairs = _pack(kept, out_coords.device)
        return cls(geometry, num_in, out_coords, tuple(out_spatial_shape), out_cache, pairs)

    @property
    def num_out(self) -> int:
        return self.out_coords.shape[0]

    def packed(self) -> PackedPairs:
        """All pairs in two arrays (derived from the neighbour table on first use if needed)."""
        if self.pairs is None:
            self.pairs = _pairs_from_neighbours(self.neighbours, self.num_in)
        return self.pairs

    @property
    def entries(self) -> list[tuple[int, torch.Tensor | None, torch.Tensor | None]]:
        pairs = self.packed()
        return [
            (j, None, None) if a is None else (j, pairs.in_idx[a:b], pairs.out_idx[a:b])
            for j, a, b in pairs.segments
        ]

    @property
    def nbytes(self) -> int:
        """Bytes held by the index tensors (output coordinates included unless shared)."""
        held = [self.neighbours] if self.neighbours is not None else []
        if self.pairs is not None:
            held += [self.pairs.in_idx, self.pairs.out_idx]
        if self.geometry.kind != "submanifold":
            held.append(self.out_coords)
        return sum(t.numel() * t.element_size() for t in held)

    def output(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        """Sparse tensor on this map's output sites with ``feats`` (num_out, C)."""
        return SparseTensor._trusted(
            self.out_coords,
            feats,
            self.out_spatial_shape,
            self.geometry.out_stride(x.stride),
            x.batch_size,
            x.cache if self.out_cache is None else self.out_cache,
        )


def _pairs_from_neighbours(neighbours: torch.Tensor, num_in: int) -> PackedPairs:
    """:class:`PackedPairs` of a neighbour table (num_out, K); an offset whose column is the
    identity (row j takes row j) becomes the identity segment."""
    num_out, volume = neighbours.shape
    columns = neighbours.T
    rows = torch.arange(num_out, device=neighbours.device)
    flat = (columns < num_in).reshape(-1).nonzero().squeeze(1)
    which = torch.div(flat, max(num_out, 1), rounding_mode="floor")
    out_rows = flat - which * num_out
    in_rows = columns.reshape(-1).index_select(0, flat).to(torch.int64)
    entries, start = [], 0
    for j, count in enumerate(torch.bincount(which, minlength=volume).tolist()):
        in_j, out_j = in_rows[start : start + count], out_rows[start : start + count]
        start += count
        if count == num_out and torch.equal(in_j, rows):
            entries.append((j, None, None))
        elif count:
            entries.append((j, in_j, out_j))
    return _pack(entries, neighbours.device)


def _pack(entries, device) -> PackedPairs:
    """:class:`PackedPairs` of per-offset entries (identity entries stay out of the arrays)."""
    ins, outs, segments, start = [], [], [], 0
    for j, in_idx, out_idx in entries:
        if in_idx is None:
            segments.append((j, None, None))
            continue
        ins.append(in_idx)
        outs.append(out_idx)
        segments.append((j, start, start + in_idx.numel()))
        start += in_idx.numel()
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    in_all = torch.cat(ins) if ins else empty
    out_all = torch.cat(outs) if outs else empty
    return PackedPairs(in_all, out_all, tuple(segments))


def kernel_map(
    x: SparseTensor, kind: str, kernel_size, stride=1, dilation=1, padding=0, output_padding=0
) -> KernelMap:
    """Kernel map of ``x``'s sites for the given geometry, built once per coordinate set.

    The same KernelMap object is returned for every tensor sharing ``x``'s sites (``x.cache``)
    and the same geometry.
    """
    geometry = make_geometry(kind, x.ndim, kernel_size, stride, dilation, padding, output_padding)
    key = ("kernel_map", geometry)
    if key not in x.cache:
        x.cache[key] = _build(x, geometry)
    return x.cache[key]


def _build(x: SparseTensor, geometry: Geometry) -> KernelMap:
    out_shape = geometry.out_shape(x.spatial_shape)
    if geometry.kind == "submanifold":
        return _submanifold_map(x, geometry)
    if _one_window(geometry):
        which, rows, targets = _strided_windows(x, geometry, out_shape)
    else:
        which, rows, targets = _strided_candidates(x, geometry, out_shape)
    batch = x.coords[:, :1].index_select(0, rows)
    keys = linear_keys(torch.cat([batch, targets], dim=1), out_shape)
    out_keys, out_rows = torch.unique(keys, sorted=True, return_inverse=True)
    counts = torch.bincount(which, minlength=geometry.volume).tolist()
    parts, start = [], 0
    for j, count in enumerate(counts):
        parts.append((j, rows[start : start + count], out_rows[start : start + count]))
        start += count
    out_coords = decode_keys(out_keys, out_shape)
    return KernelMap.from_entries(
        geometry, parts, x.num_sites, out_coords, out_shape, {"keys": out_keys}
    )


def _one_window(geometry: Geometry) -> bool:
    """Strided conv whose windows tile the grid (kernel == stride, no dilation, no padding)."""
    return (
        geometry.kind == "conv"
        and geometry.kernel_size == geometry.stride
        and all(d == 1 for d in geometry.dilation)
        and not any(geometry.padding)
    )


def _strided_windows(x: SparseTensor, geometry: Geometry, out_shape):
    """(offset index, input row, output coordinates) of every pair of a tiling conv: each
    input lies in one window (or none, past the last whole window); ordered by offset, then
    input row."""
    spatial = x.coords[:, 1:]
    stride = torch.tensor(geometry.stride, device=x.device)
    parents = torch.div(spatial, stride, rounding_mode="floor")
    inside = (parents < torch.tensor(out_shape, device=x.device)).all(1)
    offset = torch.zeros_like(spatial[:, 0])
    for i, k in enumerate(geometry.kernel_size):
        offset = offset * k + (spatial[:, i] - parents[:, i] * k)
    rows = inside.nonzero().squeeze(1)
    which, order = torch.sort(offset.index_select(0, rows), stable=True)
    rows = rows.index_select(0, order)
    return which, rows, parents.index_select(0, rows)


def _strided_candidates(x: SparseTensor, geometry: Geometry, out_shape):
    """(offset index, input row, output coordinates) of every pair of a conv or transposed
    conv, all offsets at once; ordered by offset, then input row."""
    spatial = x.coords[:, 1:]
    dev = x.device
    shift = torch.tensor(geometry.offsets(), device=dev).reshape(-1, x.ndim)
    shift = shift * torch.tensor(geometry.dilation, device=dev)
    stride = torch.tensor(geometry.stride, device=dev)
    pad = torch.tensor(geometry.padding, device=dev)
    if geometry.kind == "conv":
        num = spatial[None] + pad - shift[:, None]
        target = torch.div(num, stride, rounding_mode="floor")
        valid = (num - target * stride == 0).all(2)
    else:
        target = spatial[None] * stride + shift[:, None] - pad
        valid = torch.ones(target.shape[:2], dtype=torch.bool, device=dev)
    valid &= ((target >= 0) & (target < torch.tensor(out_shape, device=dev))).all(2)
    flat = valid.reshape(-1).nonzero().squeeze(1)
    n = max(x.num_sites, 1)
    which = torch.div(flat, n, rounding_mode="floor")
    return which, flat - which * n, target.reshape(-1, x.ndim).index_select(0, flat)


#: A submanifold map of an odd kernel takes the neighbour-table form when its pairs fill at
#: least this fraction of the (sites x kernel volume) table (see :class:`KernelMap`).
TABLE_FILL = 0.18


def _submanifold_map(x: SparseTensor, geometry: Geometry, form: str | None = None) -> KernelMap:
    """Submanifold map through a :class:`SiteIndex`. For odd kernels offsets k and K-1-k have
    opposite shifts, so the second half are the first half's pairs with in and out swapped:
    only half are looked up, and the other half too only for the neighbour-table form.
    ``form`` forces ``"pairs"`` or ``"table"`` (odd kernels); default: by fill (TABLE_FILL)."""
    dims = zip(geometry.dilation, geometry.kernel_size, strict=True)
    left = tuple(d * (k - 1) // 2 for d, k in dims)
    right = tuple(
        d * (k - 1) - a
        for a, d, k in zip(left, geometry.dilation, geometry.kernel_size, strict=True)
    )
    shifts = [
        tuple(kk * d - a for kk, d, a in zip(k, geometry.dilation, left, strict=True))
        for k in geometry.offsets()
    ]
    volume = len(shifts)
    zero = (0,) * x.ndim
    centre = shifts.index(zero) if zero in shifts else None  # none for some even dilated kernels
    symmetric = all(k % 2 for k in geometry.kernel_size)
    if form not in (None, "pairs", "table") or (form == "table" and not symmetric):
        raise ValueError(f"form must be 'pairs' or 'table' (odd kernels only), got {form!r}")
    searched = [j for j in range(volume) if j != centre and (not symmetric or j < centre)]
    n = x.num_sites
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    if searched and n:
        # one padding for every kernel of this reach, so that e.g. the (1, 3, 3, 3) and
        # (3, 1, 1, 1) kernels of a factorized convolution share one index
        reach = max(left + right)
        index = site_index(x, (reach,) * x.ndim, (reach,) * x.ndim)

        # out site y takes the input at y + shift
        looked_up = index.lookup([index.delta(shifts[j]) for j in searched])
        if form is None and symmetric:
            pairs = 2 * int(torch.count_nonzero(looked_up.found)) + n
            form = "table" if pairs >= TABLE_FILL * n * volume else "pairs"
        if form == "table":
            table = index.neighbour_rows([index.delta(shift) for shift in shifts], looked_up)
            return KernelMap(geometry, n, x.coords, x.spatial_shape, None, None, table)
        which, out_rows, rows = index.pairs(looked_up)
        in_rows = rows.to(torch.int64)
        start = 0
        for j, count in zip(
            searched, torch.bincount(which, minlength=len(searched)).tolist(), strict=True
        ):
            found[j] = (in_rows[start : start + count], out_rows[start : start + count])
            start += count
    parts = []
    for j in range(volume):
        if j == centre:
            parts.append((j, None, None))
        elif j in found:
            parts.append((j, *found[j]))
        elif symmetric and volume - 1 - j in found:
            in_rows, out_rows = found[volume - 1 - j]
            parts.append((j, out_rows, in_rows))
    return KernelMap.from_entries(geometry, parts, n, x.coords, x.spatial_shape, None)
