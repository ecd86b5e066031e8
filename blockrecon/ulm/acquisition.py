"""A ULM acquisition: beamformed IQ frames plus (for simulations) the true bubble positions.

Coordinates are in wavelengths (lambda), one column per spatial axis of ``iq`` in the same order
(depth first); voxel ``i`` along axis ``d`` is centred at ``i * pixel_size[d]``. Bubble positions
are stored as a flat point table (one row per bubble per frame) with the frame index and the
track (bubble) id of each row.

Files: :mod:`blockrecon.io.ulm` reads and writes acquisitions (HDF5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.ulm._checks import check_iq, check_points


@dataclass(frozen=True)
class UlmAcquisition:
    """IQ frames and ground truth of a ULM acquisition.

    Attributes:
        iq: complex64 ``(frames, nz, nx)`` or ``(frames, nz, ny, nx)``.
        positions: float32 ``(n_points, ndim)``, true bubble positions in lambda.
        frames: int64 ``(n_points,)``, frame of each position (sorted ascending).
        track_ids: int64 ``(n_points,)``, bubble id of each position.
        amplitudes: float32 ``(n_points,)``, scattering amplitude of each position.
        pixel_size: voxel size per spatial axis, lambda.
        frame_rate: frames per second (Hz).
        wavelength: lambda in metres.
        metadata: JSON-serializable description (simulation parameters, seed, ...).
    """

    iq: torch.Tensor
    positions: torch.Tensor
    frames: torch.Tensor
    track_ids: torch.Tensor
    amplitudes: torch.Tensor
    pixel_size: tuple[float, ...]
    frame_rate: float
    wavelength: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_iq(self.iq)
        check_points(self.positions, self.frames, self.iq.ndim - 1, name="positions")
        n = len(self.frames)
        for name in ("track_ids", "amplitudes"):
            if getattr(self, name).shape != (n,):
                raise ValueError(
                    f"{name} must have shape ({n},), got {tuple(getattr(self, name).shape)}"
                )
        if len(self.pixel_size) != self.iq.ndim - 1 or not all(
            math.isfinite(p) and p > 0 for p in self.pixel_size
        ):
            raise ValueError(
                f"pixel_size must hold {self.iq.ndim - 1} positive values, got {self.pixel_size}"
            )
        if n and (
            bool((self.frames[1:] < self.frames[:-1]).any())
            or int(self.frames[-1]) >= self.n_frames
        ):
            raise ValueError(
                f"frames of the positions must be sorted ascending and below the "
                f"{self.n_frames} frames of iq"
            )
        check_positive(self.frame_rate, "frame_rate")
        check_positive(self.wavelength, "wavelength")

    @property
    def n_frames(self) -> int:
        return self.iq.shape[0]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.iq.shape[1:])

    def first_frames(self, n_frames: int) -> UlmAcquisition:
        """The acquisition's frames ``0 .. n_frames - 1`` with their truth (all of it when
        ``n_frames`` is at least :attr:`n_frames`).

        Raises:
            ValueError: ``n_frames`` is not a positive integer.
        """
        n_frames = check_positive_int(n_frames, "n_frames")
        if n_frames >= self.n_frames:
            return self
        kept = self.frames < n_frames
        return replace(
            self,
            iq=self.iq[:n_frames],
            positions=self.positions[kept],
            frames=self.frames[kept],
            track_ids=self.track_ids[kept],
            amplitudes=self.amplitudes[kept],
        )
