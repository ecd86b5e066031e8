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
Maps are cached in the input tensor's ``cache`` under their full geometry.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction

import torch

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


@dataclass(eq=False)
class KernelMap:
    """Input->output site pairs per kernel offset, and the output sites.

    ``entries`` lists (offset index, in_idx, out_idx) for the offsets that connect any pair, in
    increasing offset order; in_idx/out_idx are int64 (P_k,) row indices, or None for the
    identity (every site to itself, the centre of a submanifold kernel).
    """

    geometry: Geometry
    entries: list[tuple[int, torch.Tensor | None, torch.Tensor | None]]
    num_in: int
    out_coords: torch.Tensor
    out_spatial_shape: tuple[int, ...]
    out_cache: dict = field(repr=False)

    @property
    def num_out(self) -> int:
        return self.out_coords.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the index tensors (output coordinates included unless shared)."""
        idx = sum(
            t.numel() * t.element_size()
            for _, i, o in self.entries
            for t in (i, o)
            if t is not None
        )
        if self.geometry.kind == "submanifold":
            return idx
        return idx + self.out_coords.numel() * self.out_coords.element_size()

    def output(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        """Sparse tensor on this map's output sites with ``feats`` (num_out, C)."""
        return SparseTensor._trusted(
            self.out_coords,
            feats,
            self.out_spatial_shape,
            self.geometry.out_stride(x.stride),
            x.batch_size,
            self.out_cache,
        )


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
        entries = _submanifold_entries(x, geometry)
        return KernelMap(geometry, entries, x.num_sites, x.coords, out_shape, x.cache)
    candidates = _candidates(x, geometry, out_shape)
    all_keys = torch.cat([k for _, _, k in candidates]) if candidates else x.keys()[:0]
    out_keys = torch.unique(all_keys, sorted=True)
    entries = [(j, i, torch.searchsorted(out_keys, k)) for j, i, k in candidates]
    out_coords = decode_keys(out_keys, out_shape)
    return KernelMap(geometry, entries, x.num_sites, out_coords, out_shape, {"keys": out_keys})


def _candidates(x: SparseTensor, geometry: Geometry, out_shape):
    """Per offset: (offset index, input rows, output keys) for conv and transpose kinds."""
    spatial = x.coords[:, 1:]
    bounds = torch.tensor(out_shape, device=x.device)
    stride = torch.tensor(geometry.stride, device=x.device)
    pad = torch.tensor(geometry.padding, device=x.device)
    result = []
    for j, k in enumerate(geometry.offsets()):
        shift = torch.tensor(k, device=x.device) * torch.tensor(geometry.dilation, device=x.device)
        if geometry.kind == "conv":
            num = spatial + pad - shift
            target = torch.div(num, stride, rounding_mode="floor")
            valid = (num.remainder(stride) == 0).all(1)
        else:
            target = spatial * stride + shift - pad
            valid = torch.ones(spatial.shape[0], dtype=torch.bool, device=x.device)
        valid &= ((target >= 0) & (target < bounds)).all(1)
        rows = valid.nonzero().squeeze(1)
        if rows.numel():
            coords = torch.cat([x.coords[rows, :1], target[rows]], dim=1)
            result.append((j, rows, linear_keys(coords, out_shape)))
    return result


def _submanifold_entries(x: SparseTensor, geometry: Geometry):
    keys = x.keys()
    spatial = x.coords[:, 1:]
    bounds = torch.tensor(x.spatial_shape, device=x.device)
    weights = [math.prod(x.spatial_shape[i + 1 :]) for i in range(x.ndim)]
    entries = []
    for j, k in enumerate(geometry.offsets()):
        shift = [
            kk * d - d * (kernel - 1) // 2
            for kk, d, kernel in zip(k, geometry.dilation, geometry.kernel_size, strict=True)
        ]
        if not any(shift):
            entries.append((j, None, None))
            continue
        moved = spatial + torch.tensor(shift, device=x.device)
        out_rows = ((moved >= 0) & (moved < bounds)).all(1).nonzero().squeeze(1)
        query = keys[out_rows] + sum(s * w for s, w in zip(shift, weights, strict=True))
        pos = torch.searchsorted(keys, query).clamp_(max=max(keys.numel() - 1, 0))
        found = keys[pos] == query if keys.numel() else query.bool()
        if bool(found.any()):
            entries.append((j, pos[found], out_rows[found]))
    return entries
