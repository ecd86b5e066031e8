"""Retrospective undersampling: keep a subset of an acquisition's spokes.

The spoke axis is the first sample axis: k-space ``(coils, spokes, ..., readout)`` and coord
``(spokes, ..., readout, ndim)`` (3D radial spokes, stack-of-stars spokes with their partitions,
the readouts of an ISMRMRD file). An acceleration ``factor`` ``R`` keeps ``ceil(spokes / R)``
spokes, chosen by ``order``:

* ``"golden"``: the first spokes in acquisition order. For golden-angle or golden-means
  ordered data (:func:`~blockrecon.physics.trajectory.radial_3d` by default) any run of
  consecutive spokes covers k-space nearly uniformly, so the prefix is itself a near-uniform
  undersampled acquisition, as a shorter scan would have acquired it.
* ``"random"``: a random subset drawn with ``seed``, in acquisition order (sorted indices).

The kept spokes are the input's rows, unchanged. Coil maps, the reference image and the noise
level are kept (noise per sample does not change). A stored density compensation is dropped:
Pipe-Menon weights of the full trajectory are wrong for a subset (every kept sample would be
weighted for neighbours that are gone); the consumers compute weights of the subset instead.
"""

from __future__ import annotations

import math
from dataclasses import replace
from numbers import Real

import numpy as np
import torch

from blockrecon.physics.acquisition import Acquisition

__all__ = ["ORDERS", "kept_spokes", "undersample_spokes"]

#: Ways of choosing the kept spokes.
ORDERS = ("golden", "random")


def kept_spokes(n_spokes: int, factor: float, order: str = "golden", seed: int = 0) -> torch.Tensor:
    """Indices of the spokes kept at acceleration ``factor`` (see the module docstring).

    Args:
        n_spokes: spokes of the acquisition (>= 1).
        factor: acceleration ``R``, a finite number with ``1 <= R <= n_spokes``.
        order: ``"golden"`` (the first spokes) or ``"random"`` (a seeded random subset).
        seed: int >= 0, seeds ``"random"`` (NumPy's default generator); unused by ``"golden"``.

    Returns:
        int64 tensor of ``ceil(n_spokes / factor)`` distinct indices, ascending.

    Raises:
        ValueError: a factor that is not a finite number in ``[1, n_spokes]``, an unknown order
            or a seed that is not an int >= 0.
    """
    if isinstance(factor, bool) or not isinstance(factor, Real) or not math.isfinite(factor):
        raise ValueError(f"factor must be a finite number, got {factor!r}")
    if not 1 <= factor <= n_spokes:
        raise ValueError(
            f"factor must lie between 1 and the {n_spokes} spokes of the acquisition, "
            f"got {factor:g}"
        )
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    n_kept = math.ceil(n_spokes / factor)
    if order == "golden":
        return torch.arange(n_kept)
    chosen = np.random.default_rng(int(seed)).choice(n_spokes, size=n_kept, replace=False)
    return torch.from_numpy(np.sort(chosen).astype(np.int64))


def undersample_spokes(
    acquisition: Acquisition, factor: float, order: str = "golden", seed: int = 0
) -> Acquisition:
    """A new acquisition holding the spokes of :func:`kept_spokes` (module docstring).

    Args:
        acquisition: k-space ``(coils, spokes, ..., readout)``, coord
            ``(spokes, ..., readout, ndim)``: at least two sample axes.
        factor: acceleration ``R``, ``1 <= R <= spokes``; ``ceil(spokes / R)`` spokes are kept.
        order: ``"golden"`` or ``"random"``.
        seed: seeds ``"random"``.

    Returns:
        :class:`~blockrecon.physics.acquisition.Acquisition` with k-space
        ``(coils, kept, ..., readout)`` and coord ``(kept, ..., readout, ndim)`` copied from the
        input's rows, the input's maps, image, voxel size and noise, and no ``dcf``.

    Raises:
        ValueError: data without a spoke axis (coord ``(samples, ndim)``) or a bad ``factor``,
            ``order`` or ``seed`` (see :func:`kept_spokes`).
    """
    if acquisition.coord.ndim < 3:
        raise ValueError(
            "undersampling needs a spoke axis: coord (spokes, ..., readout, ndim), got coord "
            f"of shape {tuple(acquisition.coord.shape)}"
        )
    index = kept_spokes(acquisition.sample_shape[0], factor, order, seed)
    return replace(
        acquisition,
        kspace=acquisition.kspace.index_select(1, index.to(acquisition.kspace.device)),
        coord=acquisition.coord.index_select(0, index.to(acquisition.coord.device)),
        dcf=None,
    )
