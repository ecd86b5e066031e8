"""Sparse tensor: active grid sites (batch index + D integer coordinates) with a feature row each.

Coordinates are kept canonical: int64, unique, sorted in row-major order of the (batch, *grid)
array, so that a site's linear index ("key") increases with its row. Kernel maps and other
coordinate-derived objects are cached in ``SparseTensor.cache``, a dict shared by every tensor
holding the same coordinate set (layers that keep the sites pass it on), so a network builds each
map once.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from blockrecon.checks import check_positive_int
from blockrecon.sparse.select import select_sites, site_energy

SUPPORTED_NDIMS = (2, 3, 4)
_MAX_KEY = 2**62


def _normalize_stride(stride, ndim: int) -> tuple:
    """Stride as a tuple of positive ints (or Fractions when finer than the reference grid)."""
    if stride is None:
        return (1,) * ndim
    if isinstance(stride, int | Fraction):
        stride = (stride,) * ndim
    stride = tuple(stride)
    if len(stride) != ndim:
        raise ValueError(f"stride has {len(stride)} entries, expected {ndim}")
    out = []
    for s in stride:
        if not isinstance(s, int | Fraction) or isinstance(s, bool) or s <= 0:
            raise ValueError(f"stride entries must be positive ints or Fractions, got {stride}")
        s = Fraction(s)
        out.append(int(s) if s.denominator == 1 else s)
    return tuple(out)


def linear_keys(coords: torch.Tensor, spatial_shape: tuple[int, ...]) -> torch.Tensor:
    """Row-major linear index of each site of ``coords`` (N, 1+D) in a (batch, *spatial) array.

    Returns int64 (N,). Coordinates must be inside the grid (not checked here).
    """
    keys = coords[:, 0].to(torch.int64)
    for i, size in enumerate(spatial_shape):
        keys = keys * size + coords[:, i + 1]
    return keys


def decode_keys(keys: torch.Tensor, spatial_shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`linear_keys`: int64 (N,) keys -> int64 coordinates (N, 1+D)."""
    cols = []
    rest = keys
    for size in reversed(spatial_shape):
        cols.append(rest % size)
        rest = rest // size
    cols.append(rest)
    return torch.stack(cols[::-1], dim=1)


class SparseTensor:
    """Features on the active sites of a batch of D-dimensional grids (D = 2, 3 or 4: 3D + time).

    Args:
        coords: (N, 1+D) int32/int64, rows (batch, x_0, ..., x_{D-1}) with 0 <= x_i <
            spatial_shape[i]. Sorted into canonical order if needed; duplicate sites are an error.
        feats: (N, C) floating-point features, row i belonging to site coords[i].
        spatial_shape: grid shape (D ints) of this tensor.
        stride: size of one site in units of the reference (input) grid, per dimension: ints
            after downsampling, Fractions after upsampling beyond the reference. Default all 1.
        batch_size: number of grids B; default 1 + largest batch index (1 when empty).
    """

    def __init__(
        self,
        coords: torch.Tensor,
        feats: torch.Tensor,
        spatial_shape,
        stride=None,
        batch_size: int | None = None,
    ) -> None:
        spatial_shape = _check_spatial_shape(spatial_shape)
        ndim = len(spatial_shape)
        coords, feats = _check_coords_feats(coords, feats, ndim)
        if batch_size is None:
            batch_size = int(coords[:, 0].max()) + 1 if coords.shape[0] else 1
        check_positive_int(batch_size, "batch_size")
        _check_in_grid(coords, spatial_shape, batch_size)
        if batch_size * math.prod(spatial_shape) >= _MAX_KEY:
            raise ValueError("batch_size * prod(spatial_shape) is too large for int64 site keys")
        keys = linear_keys(coords, spatial_shape)
        if keys.numel() > 1 and not bool((keys[1:] > keys[:-1]).all()):
            keys, order = torch.sort(keys, stable=True)
            coords, feats = coords[order], feats[order]
            if bool((keys[1:] == keys[:-1]).any()):
                raise ValueError("coords contain duplicate sites")
        self._set(coords, feats, spatial_shape, _normalize_stride(stride, ndim), batch_size, {})
        self.cache["keys"] = keys

    def _set(self, coords, feats, spatial_shape, stride, batch_size, cache) -> None:
        self.coords = coords
        self.feats = feats
        self.spatial_shape = spatial_shape
        self.stride = stride
        self.batch_size = batch_size
        self.cache = cache

    @classmethod
    def _trusted(cls, coords, feats, spatial_shape, stride, batch_size, cache=None):
        """Build from canonical int64 coords without validation (internal use by layers)."""
        obj = cls.__new__(cls)
        obj._set(
            coords, feats, tuple(spatial_shape), stride, batch_size, {} if cache is None else cache
        )
        return obj

    # ------------------------------------------------------------------ properties
    @property
    def ndim(self) -> int:
        """Number of spatial dimensions D."""
        return len(self.spatial_shape)

    @property
    def num_sites(self) -> int:
        return self.coords.shape[0]

    @property
    def num_channels(self) -> int:
        return self.feats.shape[1]

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def dtype(self) -> torch.dtype:
        return self.feats.dtype

    def keys(self) -> torch.Tensor:
        """int64 (N,) row-major linear indices of the sites (increasing), cached."""
        if "keys" not in self.cache:
            self.cache["keys"] = linear_keys(self.coords, self.spatial_shape)
        return self.cache["keys"]

    def __repr__(self) -> str:
        return (
            f"SparseTensor(sites={self.num_sites}, channels={self.num_channels}, "
            f"spatial_shape={self.spatial_shape}, stride={self.stride}, "
            f"batch_size={self.batch_size}, dtype={self.dtype}, device={self.device})"
        )

    # ------------------------------------------------------------------ conversions
    def with_feats(self, feats: torch.Tensor) -> SparseTensor:
        """Same sites (and shared cache) with new features (N, C')."""
        if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
            raise ValueError("feats must be a 2D tensor (N, C)")
        if feats.shape[0] != self.num_sites:
            raise ValueError(
                f"feats has {feats.shape[0]} rows but the tensor has {self.num_sites} sites"
            )
        return SparseTensor._trusted(
            self.coords, feats, self.spatial_shape, self.stride, self.batch_size, self.cache
        )

    def to(self, device=None, dtype: torch.dtype | None = None) -> SparseTensor:
        """Move to ``device`` and/or cast features to ``dtype`` (the cache moves only if kept)."""
        feats = self.feats.to(device=device, dtype=dtype)
        if feats.device == self.device:
            return self.with_feats(feats)
        return SparseTensor._trusted(
            self.coords.to(feats.device), feats, self.spatial_shape, self.stride, self.batch_size
        )

    def to_dense(self, fill_value: float = 0.0) -> torch.Tensor:
        """Dense (B, C, *spatial_shape) tensor; inactive sites hold ``fill_value``.

        Differentiable with respect to the features.
        """
        size = self.batch_size * math.prod(self.spatial_shape)
        flat = self.feats.new_full((size, self.num_channels), fill_value)
        flat = flat.index_copy(0, self.keys(), self.feats)
        dense = flat.reshape(self.batch_size, *self.spatial_shape, self.num_channels)
        return dense.movedim(-1, 1)

    @classmethod
    def from_dense(
        cls,
        x: torch.Tensor,
        threshold: float | None = None,
        topk: int | None = None,
        mask: torch.Tensor | None = None,
        stride=None,
    ) -> SparseTensor:
        """Sparse tensor holding the selected sites of a dense real tensor x (B, C, *spatial).

        Exactly one selector: ``threshold`` keeps sites whose channel-summed squared magnitude
        sum_c x[b, c, site]^2 is > threshold; ``topk`` keeps the k sites of largest such energy
        in each batch item (ties: lowest linear index first); ``mask`` (B, *spatial) bool keeps
        its True sites. Features are differentiable with respect to x.
        """
        if not isinstance(x, torch.Tensor) or x.ndim - 2 not in SUPPORTED_NDIMS:
            raise ValueError("x must be a tensor (B, C, *spatial) with 2, 3 or 4 spatial dims")
        if not x.is_floating_point():
            raise ValueError(
                f"x must be real floating point (complex as 2 channels), got {x.dtype}"
            )
        if sum(s is not None for s in (threshold, topk, mask)) != 1:
            raise ValueError("give exactly one of threshold, topk, mask")
        spatial_shape = tuple(x.shape[2:])
        keep = _selection(x, threshold, topk, mask)
        coords = keep.nonzero()
        feats = x.movedim(1, -1)[keep]
        ndim = len(spatial_shape)
        return cls._trusted(
            coords, feats, spatial_shape, _normalize_stride(stride, ndim), x.shape[0]
        )


def _selection(x: torch.Tensor, threshold, topk, mask) -> torch.Tensor:
    """Boolean (B, *spatial) site selection for :meth:`SparseTensor.from_dense`."""
    if mask is None:
        return select_sites(site_energy(x), threshold=threshold, topk=topk)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool tensor")
    expected = (x.shape[0], *x.shape[2:])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {expected}")
    return mask.to(x.device)


def _check_spatial_shape(spatial_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in spatial_shape)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"spatial_shape must be a sequence of ints, got {spatial_shape!r}"
        ) from err
    if len(shape) not in SUPPORTED_NDIMS:
        raise ValueError(f"spatial_shape must have 2, 3 or 4 entries, got {len(shape)}")
    if any(s < 1 for s in shape):
        raise ValueError(f"spatial_shape entries must be positive, got {shape}")
    return shape


def _check_coords_feats(coords, feats, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(coords, torch.Tensor):
        raise ValueError("coords must be a torch tensor")
    if not isinstance(feats, torch.Tensor):
        raise ValueError("feats must be a torch tensor")
    if coords.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"coords must be integer (int32 or int64), got {coords.dtype}")
    if coords.ndim != 2 or coords.shape[1] != 1 + ndim:
        raise ValueError(
            f"coords must have shape (N, {1 + ndim}) (batch index + {ndim} "
            f"coordinates), got {tuple(coords.shape)}"
        )
    if feats.ndim != 2:
        raise ValueError(f"feats must have shape (N, C), got {tuple(feats.shape)}")
    if feats.shape[0] != coords.shape[0]:
        raise ValueError(f"feats has {feats.shape[0]} rows but coords has {coords.shape[0]}")
    if not feats.is_floating_point():
        raise ValueError(f"feats must be floating point, got {feats.dtype}")
    if coords.device != feats.device:
        raise ValueError(f"coords on {coords.device} but feats on {feats.device}")
    return coords.to(torch.int64), feats


def _check_in_grid(coords: torch.Tensor, spatial_shape: tuple[int, ...], batch_size: int) -> None:
    if coords.shape[0] == 0:
        return
    low = coords.min(0).values.tolist()
    high = coords.max(0).values.tolist()
    if low[0] < 0 or high[0] >= batch_size:
        raise ValueError(f"coords batch index out of range [0, {batch_size})")
    for i, size in enumerate(spatial_shape):
        if low[i + 1] < 0 or high[i + 1] >= size:
            raise ValueError(
                f"coords out of spatial_shape: dimension {i} spans "
                f"[{low[i + 1]}, {high[i + 1]}], grid is [0, {size})"
            )
