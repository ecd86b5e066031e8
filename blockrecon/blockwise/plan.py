"""Patch plans: how a volume is cut into cores with halos.

A plan tiles the output volume with cores of ``patch_size`` voxels (the last core of a row is
shifted back so that every patch has the same size; it only writes voxels not written yet). Each
patch reads ``core + 2 * halo`` voxels of the *padded* volume, which is the input volume padded
once by ``halo`` on both sides plus, at the end, up to ``stride - 1`` voxels so that its size is a
multiple of the stride.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product

from blockrecon.checks import check_positive_int


@dataclass(frozen=True)
class Patch:
    """One patch of a plan.

    Attributes:
        index: position in the patch grid.
        input: slices of the padded volume the network reads (core + 2 * halo per dimension).
        output: slices of the output volume this patch writes.
        keep: slices, relative to the patch's core, of the values written to ``output``.
    """

    index: tuple[int, ...]
    input: tuple[slice, ...]
    output: tuple[slice, ...]
    keep: tuple[slice, ...]


@dataclass(frozen=True)
class PatchPlan:
    """Cores and halos covering a volume; iterate over it to get :class:`Patch` entries."""

    volume_shape: tuple[int, ...]
    patch_size: tuple[int, ...]
    halo: tuple[int, ...]
    stride: int
    grid: tuple[int, ...]
    patches: tuple[Patch, ...]

    @property
    def pad(self) -> tuple[tuple[int, int], ...]:
        """Voxels padded (before, after) in each dimension."""
        return volume_padding(self.volume_shape, self.halo, self.stride)

    @property
    def input_size(self) -> tuple[int, ...]:
        """Spatial size of every patch's input."""
        return tuple(c + 2 * h for c, h in zip(self.patch_size, self.halo, strict=True))

    def __len__(self) -> int:
        return len(self.patches)

    def __iter__(self) -> Iterator[Patch]:
        return iter(self.patches)

    def __repr__(self) -> str:
        head = (
            f"PatchPlan(volume={self.volume_shape}, core={self.patch_size}, halo={self.halo}, "
            f"stride={self.stride}, grid={self.grid}, {len(self)} patches, pad={self.pad})"
        )
        rows = [f"{'index':<14}{'input (padded)':<32}{'output':<32}keep (in core)"]
        rows += [
            f"{str(p.index):<14}{_fmt(p.input):<32}{_fmt(p.output):<32}{_fmt(p.keep)}"
            for p in self.patches
        ]
        return "\n".join([head, *rows])


def _fmt(slices: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in slices) + "]"


def _aligned(size: int, stride: int) -> int:
    return math.ceil(size / stride) * stride


def volume_padding(
    shape: Sequence[int], halo: Sequence[int], stride: int
) -> tuple[tuple[int, int], ...]:
    """(before, after) padding: ``halo`` each side plus, at the end, up to a stride multiple."""
    return tuple((h, h + _aligned(s, stride) - s) for s, h in zip(shape, halo, strict=True))


def _per_dim(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    values = (value,) * ndim if isinstance(value, int) else tuple(value)
    if len(values) != ndim:
        raise ValueError(f"{name} has {len(values)} entries but the volume has {ndim} dimensions")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must hold integers, got {values}")
    return values


def _dim_patches(size: int, core: int, stride: int) -> list[tuple[slice, slice, slice]]:
    """(core-relative input origin, output, keep) slices along one dimension."""
    last_origin = _aligned(size, stride) - core
    entries = []
    for start in range(0, size, core):
        origin = min(start, last_origin)
        stop = min(start + core, size)
        entries.append((origin, slice(start, stop), slice(start - origin, stop - origin)))
    return entries


def plan_patches(
    volume_shape: Sequence[int],
    patch_size: int | Sequence[int],
    halo: int | Sequence[int],
    stride: int = 1,
) -> PatchPlan:
    """Plan the patches covering ``volume_shape`` (spatial dimensions only).

    Args:
        volume_shape: spatial size of the volume, e.g. ``(D, H, W)``.
        patch_size: core size per patch (int for all dimensions, or one per dimension); a
            multiple of ``stride`` and at most the volume size.
        halo: voxels of context read on each side of the core (int or one per dimension).
        stride: the network's total down-sampling; cores and origins are multiples of it.

    Returns:
        A :class:`PatchPlan`; ``print`` it to see the table of slices.
    """
    shape = _per_dim(tuple(volume_shape), len(volume_shape), "volume_shape")
    ndim = len(shape)
    if ndim == 0 or min(shape) < 1:
        raise ValueError(f"volume_shape must be positive sizes, got {shape}")
    core = _per_dim(patch_size, ndim, "patch_size")
    halos = _per_dim(halo, ndim, "halo")
    check_positive_int(stride, "stride")
    if min(core) < 1:
        raise ValueError(f"patch_size must be positive, got {core}")
    if min(halos) < 0:
        raise ValueError(f"halo must be >= 0, got {halos}")
    if any(c > s for c, s in zip(core, shape, strict=True)):
        raise ValueError(f"patch_size {core} is larger than the volume {shape}")
    if any(c % stride for c in core):
        raise ValueError(f"patch_size {core} is not a multiple of the network stride {stride}")
    per_dim = [_dim_patches(s, c, stride) for s, c in zip(shape, core, strict=True)]
    patches = []
    for index in product(*(range(len(e)) for e in per_dim)):
        entries = [per_dim[d][i] for d, i in enumerate(index)]
        patches.append(
            Patch(
                index=tuple(index),
                input=tuple(
                    slice(o, o + c + 2 * h)
                    for (o, _, _), c, h in zip(entries, core, halos, strict=True)
                ),
                output=tuple(e[1] for e in entries),
                keep=tuple(e[2] for e in entries),
            )
        )
    grid = tuple(len(e) for e in per_dim)
    return PatchPlan(shape, core, halos, stride, grid, tuple(patches))
