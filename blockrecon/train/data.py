"""Training pairs: what one example holds, its normalization, and moving it to a device.

Pairs are normalized as :mod:`blockrecon.inference` prepares data for a model
(:func:`~blockrecon.inference.normalize`), so that a trained network gets its data at
reconstruction time as it got them in training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from blockrecon.inference import normalize
from blockrecon.physics import Sense


@dataclass(frozen=True)
class HeldOutSamples:
    """Measured samples kept out of the network's input, to compare its image with.

    Attributes:
        kspace: complex64 ``(coils, *samples)``, scaled as the pair's k-space.
        op: the :class:`~blockrecon.physics.Sense` operator of these samples, scaled as the
            pair's operator before any renormalization of the input samples' operator, so that
            ``op(x)`` of the pair's image ``x`` is comparable with ``kspace``.
    """

    kspace: torch.Tensor
    op: Sense


@dataclass(frozen=True)
class TrainingPair:
    """One example: k-space, its operator and what to compare the network's image with.

    Attributes:
        kspace: complex64 ``(coils, *samples)``.
        op: the :class:`~blockrecon.physics.Sense` operator of this acquisition.
        target: complex64 reference image ``image_shape`` (``None`` when there is none).
        intensity_scale: factor already applied to ``kspace`` and ``target`` (1 unless
            normalized, see :mod:`blockrecon.inference`); divide a reconstruction by it to get
            the data's own scale.
        heldout: samples of the same acquisition withheld from ``kspace`` for a
            self-supervised loss (:mod:`blockrecon.train.kspace_split`), or ``None``.
    """

    kspace: torch.Tensor
    op: Sense
    target: torch.Tensor | None
    intensity_scale: float = 1.0
    heldout: HeldOutSamples | None = None


def normalize_pair(
    kspace: torch.Tensor,
    maps: torch.Tensor,
    coord: torch.Tensor,
    target: torch.Tensor | None = None,
    backend: str = "auto",
    weights: torch.Tensor | None = None,
) -> TrainingPair:
    """The normalized pair of an acquisition (:func:`~blockrecon.inference.normalize`).

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        maps: complex ``(coils, *image_shape)``.
        coord: float32 ``(..., ndim)`` in grid units.
        target: complex reference image ``image_shape``, or ``None`` (inference).
        backend: NUFFT backend.
        weights: sample weights of the operator (:class:`~blockrecon.physics.Sense`), or
            ``None``; the norm is then that of ``E^H W E``.

    Returns:
        :class:`TrainingPair` with the scaled operator, k-space and target (``target`` is
        ``None`` when none was given) and ``intensity_scale = c``.
    """
    inputs = normalize(kspace, maps, coord, backend=backend, weights=weights)
    target = None if target is None else target * inputs.intensity_scale
    return TrainingPair(inputs.kspace, inputs.op, target, inputs.intensity_scale)


def sense_to(op: Sense, device: torch.device) -> Sense:
    """The same SENSE operator (maps, trajectory, weights, backend, normal, accuracy, coil
    batch) on ``device``."""
    weights = op.weights
    return Sense(
        op.maps.to(device),
        op.nufft.coord.to(device),
        weights=None if weights is None else weights.to(device),
        backend=op.nufft.backend,
        normal=op.normal_kind,
        coil_batch=op.coil_batch,
        eps=op.nufft.eps,
    )


def pair_to(pair: TrainingPair, device: torch.device | str) -> TrainingPair:
    """The pair with its tensors and operators on ``device`` (the same pair if already there)."""
    device = torch.device(device)
    if pair.kspace.device == device:
        return pair
    target = None if pair.target is None else pair.target.to(device)
    heldout = pair.heldout
    if heldout is not None:
        heldout = HeldOutSamples(heldout.kspace.to(device), sense_to(heldout.op, device))
    return replace(
        pair,
        kspace=pair.kspace.to(device),
        op=sense_to(pair.op, device),
        target=target,
        heldout=heldout,
    )
