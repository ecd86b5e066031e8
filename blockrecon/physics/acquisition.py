"""A non-Cartesian MRI acquisition in memory: k-space, trajectory and what belongs with them.

One dataclass for measured and simulated data: :func:`~blockrecon.physics.simulate_acquisition`
returns it, every reader in :mod:`blockrecon.io` returns it and the writers take it. Shapes
follow the blockrecon conventions (SigPy/BART):

* ``kspace``: complex64 ``(coils, *sample_shape)``;
* ``coord``: float32 ``(*sample_shape, ndim)`` in image-grid units, ``-N/2 <= coord[..., d] <= N/2``
  with ``N = image_shape[d]``;
* ``image_shape``: ``ndim`` (3, or 2 for 2D) positive ints; ``voxel_size_mm`` in the same axis
  order;
* ``maps`` (optional): complex64 coil sensitivities ``(coils, *image_shape)``;
* ``dcf`` (optional): float32 non-negative density compensation ``sample_shape``;
* ``image`` (optional): complex64 reference image ``image_shape``;
* ``noise_std``, ``snr_db`` (optional): the noise added by a simulation, when known.

:func:`check_acquisition` validates all of it (shapes, dtypes, ranges, finite values) and names
the offending field; readers and writers call it with the file's name, so the message names the
file too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from blockrecon.physics.validation import (
    check_coil_count,
    check_coord,
    check_image,
    check_image_shape,
    check_kspace,
    check_maps,
    check_weights,
)

__all__ = ["Acquisition", "check_acquisition", "standard_dtypes"]

_TENSOR_FIELDS = ("kspace", "coord", "maps", "dcf", "image")


@dataclass
class Acquisition:
    """Non-Cartesian k-space with its trajectory, image geometry and optional extras.

    Attributes:
        kspace: complex64 ``(coils, *sample_shape)``.
        coord: float32 ``(*sample_shape, ndim)``, image-grid units, range ``[-N/2, N/2]``.
        image_shape: ``ndim`` ints, the reconstruction grid.
        voxel_size_mm: ``ndim`` positive floats, voxel size along each image axis in mm.
        maps: complex64 coil sensitivity maps ``(coils, *image_shape)``, or ``None``.
        dcf: float32 density compensation weights ``sample_shape``, or ``None``.
        image: complex64 reference image ``image_shape`` (e.g. the simulated truth), or ``None``.
        noise_std: standard deviation of the complex k-space noise (``E|n|^2 = noise_std**2``)
            when known, e.g. 0 for noise-free simulated data; ``None`` when unknown.
        snr_db: k-space SNR in dB requested from a simulation, or ``None``.

    The constructor only normalizes ``image_shape`` and ``voxel_size_mm`` to tuples; call
    :func:`check_acquisition` to validate the contents.
    """

    kspace: torch.Tensor
    coord: torch.Tensor
    image_shape: tuple[int, ...]
    voxel_size_mm: tuple[float, ...] = (1.0, 1.0, 1.0)
    maps: torch.Tensor | None = None
    dcf: torch.Tensor | None = None
    image: torch.Tensor | None = None
    noise_std: float | None = None
    snr_db: float | None = None

    def __post_init__(self) -> None:
        self.image_shape = tuple(self.image_shape)
        self.voxel_size_mm = tuple(float(v) for v in self.voxel_size_mm)

    @property
    def num_coils(self) -> int:
        """Number of receive coils (``kspace.shape[0]``)."""
        return int(self.kspace.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of the sample axes, ``coord.shape[:-1]``."""
        return tuple(self.coord.shape[:-1])

    def to(self, device: torch.device | str) -> Acquisition:
        """A copy with every tensor moved to ``device`` (metadata shared)."""
        moved = {
            name: getattr(self, name).to(device)
            for name in _TENSOR_FIELDS
            if getattr(self, name) is not None
        }
        return replace(self, **moved)


def _check_voxel_size(voxel_size_mm: Sequence[float], ndim: int) -> None:
    if len(voxel_size_mm) != ndim:
        raise ValueError(
            f"voxel_size_mm must have {ndim} entries like image_shape, got {len(voxel_size_mm)}"
        )
    if not all(math.isfinite(v) and v > 0 for v in voxel_size_mm):
        raise ValueError(f"voxel_size_mm entries must be positive and finite, got {voxel_size_mm}")


def standard_dtypes(acquisition: Acquisition) -> Acquisition:
    """The acquisition with complex fields as complex64 and real floating fields as float32.

    Other dtypes (real k-space, integer coordinates...) are left alone for
    :func:`check_acquisition` to reject. Returns the same object when nothing changes.
    """
    converted = {}
    for name in _TENSOR_FIELDS:
        value = getattr(acquisition, name)
        if not isinstance(value, torch.Tensor):
            continue
        if value.is_complex() and value.dtype != torch.complex64:
            converted[name] = value.to(torch.complex64)
        elif value.is_floating_point() and value.dtype != torch.float32:
            converted[name] = value.to(torch.float32)
    return replace(acquisition, **converted) if converted else acquisition


def _check_types(acquisition: Acquisition) -> None:
    for name in _TENSOR_FIELDS:
        value = getattr(acquisition, name)
        optional = name not in ("kspace", "coord")
        if not isinstance(value, torch.Tensor) and not (optional and value is None):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _check_optional_fields(acquisition: Acquisition, shape: tuple[int, ...]) -> None:
    if acquisition.maps is not None:
        check_maps(acquisition.maps, shape)
        check_coil_count(acquisition.kspace, acquisition.maps)
    if acquisition.dcf is not None:
        check_weights(acquisition.dcf, acquisition.sample_shape, "dcf")
        if tuple(acquisition.dcf.shape) != acquisition.sample_shape:
            raise ValueError(
                f"dcf must have the sample shape {acquisition.sample_shape}, "
                f"got {tuple(acquisition.dcf.shape)}"
            )
    if acquisition.image is not None:
        check_image(acquisition.image, shape)
        if acquisition.image.ndim != len(shape):
            raise ValueError(f"image must have shape {shape}, got {tuple(acquisition.image.shape)}")


def check_acquisition(acquisition: Acquisition, source: str = "acquisition") -> None:
    """Validate every field of an acquisition.

    Args:
        acquisition: the acquisition to check.
        source: what to name in the message, typically the file's path.

    Raises:
        ValueError: ``"<source>: <problem>"`` for the first problem found: a field that is not a
            tensor, a wrong image shape or voxel size, coord not ``(*samples, ndim)`` or out of
            ``[-N/2, N/2]``, k-space not complex or its sample axes different from coord's,
            NaN/Inf anywhere, maps with another coil count or image shape, negative dcf,
            or a reference image of the wrong shape. complex128/float64 fields pass (see
            :func:`standard_dtypes`).
    """
    try:
        _check_types(acquisition)
        shape = check_image_shape(acquisition.image_shape)
        _check_voxel_size(acquisition.voxel_size_mm, len(shape))
        check_coord(acquisition.coord, shape)
        check_kspace(acquisition.kspace, acquisition.sample_shape)
        if acquisition.kspace.ndim != acquisition.coord.ndim:
            raise ValueError(
                "kspace must have shape (coils, *sample_shape) with sample_shape = coord.shape"
                f"[:-1] = {acquisition.sample_shape}, got {tuple(acquisition.kspace.shape)}"
            )
        _check_optional_fields(acquisition, shape)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
