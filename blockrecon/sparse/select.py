"""The one rule that picks the active sites of a dense tensor: an energy per site, then either a
threshold (absolute, or relative to the group's maximum) or the ``k`` largest per group.

A group is the block of the trailing ``group_ndim`` axes (e.g. every spatial site of one batch
item, of one frame, or of one tile); ties in top-k go to the lowest index.
"""

from __future__ import annotations

import math

import torch


def site_energy(x: torch.Tensor) -> torch.Tensor:
    """``sum_c x[:, c]^2``: the (B, *spatial) energy of a real (B, C, *spatial) tensor."""
    with torch.no_grad():
        return x.square().sum(1)


def select_sites(
    energy: torch.Tensor,
    *,
    threshold: float | None = None,
    topk: int | None = None,
    group_ndim: int | None = None,
    relative: bool = False,
) -> torch.Tensor:
    """Bool mask of ``energy``'s shape: the sites each group keeps.

    Args:
        energy: real, finite, >= 0.
        threshold: keep ``energy > threshold`` (times the group's maximum if ``relative``; a
            group whose maximum is 0 keeps nothing).
        topk: keep the ``topk`` largest of each group.
        group_ndim: trailing axes forming a group; default all but the first.

    Raises:
        ValueError: not exactly one of ``threshold`` and ``topk``; ``topk`` not an int in
            ``[0, group size]``.
    """
    if (threshold is None) == (topk is None):
        raise ValueError("give exactly one of threshold and topk")
    group_ndim = energy.ndim - 1 if group_ndim is None else group_ndim
    group_axes = tuple(range(energy.ndim - group_ndim, energy.ndim))
    if threshold is not None:
        if not relative:
            return energy > threshold
        peak = energy.amax(dim=group_axes, keepdim=True)
        return energy > threshold * torch.where(peak > 0, peak, math.inf)
    return _topk(energy, topk, group_ndim)


def _topk(energy: torch.Tensor, k: int, group_ndim: int) -> torch.Tensor:
    """The ``k`` largest sites of every group of the trailing ``group_ndim`` axes."""
    group_shape = energy.shape[energy.ndim - group_ndim :]
    size = math.prod(group_shape)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= size:
        raise ValueError(f"topk must be an int in [0, {size}], got {k!r}")
    flat = energy.reshape(-1, size)
    order = torch.sort(flat, dim=1, descending=True, stable=True)[1]
    keep = torch.zeros(flat.shape, dtype=torch.bool, device=energy.device)
    keep.scatter_(1, order[:, :k], True)
    return keep.reshape(energy.shape)
