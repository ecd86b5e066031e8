"""Conventional ULM: clutter filter, detection and sub-pixel localization, tracking, maps.

The pipeline the learned detectors are measured against (PALA-style): optional SVD clutter
filter, per-frame local maxima above a noise-based threshold refined on their 3x3(x3)
neighbourhood, Hungarian tracking with gap closing, accumulation on a finer grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from blockrecon.ulm.clutter import svd_clutter_filter
from blockrecon.ulm.localize import localize
from blockrecon.ulm.maps import TrackMaps, track_maps
from blockrecon.ulm.track import MAX_GAP, MAX_LINKING_DISTANCE, MIN_LENGTH, link_tracks


@dataclass(frozen=True)
class ConventionalUlmResult:
    """Output of :func:`conventional_ulm`.

    Attributes:
        positions: float32 ``(n, ndim)``, every localization (lambda).
        frames: int64 ``(n,)``, frame of each localization.
        track_ids: int64 ``(n,)``, track of each localization, -1 if not in a kept track.
        maps: density and velocity maps on the fine grid.
    """

    positions: torch.Tensor
    frames: torch.Tensor
    track_ids: torch.Tensor
    maps: TrackMaps

    def tracked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions and frames of the localizations that belong to a kept track."""
        keep = self.track_ids >= 0
        return self.positions[keep], self.frames[keep]


def conventional_ulm(
    iq: torch.Tensor,
    pixel_size: float | Sequence[float],
    frame_rate: float,
    *,
    svd_components: int = 0,
    method: str = "weighted_centroid",
    threshold_factor: float = 5.0,
    psf_fwhm: tuple[float, float] = (0.65, 1.25),
    max_linking_distance: float = MAX_LINKING_DISTANCE,
    max_gap: int = MAX_GAP,
    min_length: int = MIN_LENGTH,
    upsampling: int = 8,
) -> ConventionalUlmResult:
    """Run conventional ULM on a block of IQ frames.

    Args:
        iq: complex ``(frames, *spatial)``.
        pixel_size: voxel size in lambda, one value or one per axis.
        frame_rate: frames per second (Hz).
        svd_components: leading singular components removed by the clutter filter (0: none).
        method: ``"weighted_centroid"`` or ``"radial_symmetry"`` (see ``blockrecon.ulm.localize``).
        threshold_factor: detection threshold as a multiple of the estimated noise level.
        psf_fwhm: (axial, lateral) PSF FWHM in lambda (used by radial symmetry).
        max_linking_distance: largest displacement between linked detections, lambda.
        max_gap: missing frames a track may bridge.
        min_length: detections a track needs to be kept.
        upsampling: fine-grid factor of the maps.
    """
    filtered = svd_clutter_filter(iq, svd_components) if svd_components else iq
    positions, frames = localize(
        filtered, pixel_size, method=method, threshold_factor=threshold_factor, psf_fwhm=psf_fwhm
    )
    track_ids = link_tracks(
        positions, frames, max_linking_distance, max_gap=max_gap, min_length=min_length
    )
    maps = track_maps(
        positions,
        frames,
        track_ids,
        tuple(iq.shape[1:]),
        pixel_size,
        frame_rate,
        upsampling=upsampling,
    )
    return ConventionalUlmResult(positions=positions, frames=frames, track_ids=track_ids, maps=maps)
