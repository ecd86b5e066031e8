"""A pair of diverging canals: the phantom of PALA's gap score, and its density profiles.

Two straight canals of radius ``radius`` run along the lateral axis (the last one) at the
middle depth of the field (and, in 3D, in the middle elevation plane), one above the other. The
wall-to-wall distance between them grows linearly from ``min_separation`` at the left edge of
the field to ``max_separation`` at its right edge (the canals' centrelines are mirror images
about the middle depth). Bubbles enter each canal at the left, by a Poisson process, and cross
the field at ``speed`` lambda per frame, each at a fixed random offset inside the canal's cross
section (a uniform point of the disc in 3D, of the diameter in 2D).

:func:`canal_profiles` reads the density map across the canals at every fine lateral column:
the samples along depth from the upper canal's outer wall to the lower one's, widened by
lambda/4 (the true-positive distance) on either side, at the columns more than one lambda from
either end of the pair (PALA too measured away from the field's edges); in 3D the density is
summed over the fine slices whose centres lie within the canals' radius of their plane.
:func:`canal_pair_gap` turns them into PALA's gap (see :mod:`blockrecon.ulm.pala_scores`).
Lengths in lambda, grid convention of :mod:`blockrecon.ulm.blocks` (voxel ``i`` centred at
``i * pixel_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.ulm._checks import check_per_axis
from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.blocks import cell_centres
from blockrecon.ulm.pala_scores import GAP_THRESHOLD_FRACTION, canal_gap
from blockrecon.ulm.render import add_white_noise, render_bubbles

#: Depth margin (lambda) added on either side of the canals' outer walls in a profile.
PROFILE_MARGIN = 0.25
#: Lateral margin (lambda) at either end of the pair without profiles: at the field's edge the
#: PSF is cut and detections thin out, which is no matter of resolution.
SECTION_MARGIN = 1.0
#: Key of the canal pair in an acquisition's metadata.
METADATA_KEY = "canal_pair"


@dataclass(frozen=True)
class CanalPair:
    """Geometry of the pair (lambda).

    Attributes:
        depth: depth of the mid-line between the canals (axis 0).
        elevation: position of the canals' plane along axis 1 in 3D (None in 2D).
        start, stop: lateral positions (last axis) where the wall-to-wall distance is
            ``min_separation`` and ``max_separation`` (linear in between and beyond).
        min_separation, max_separation: wall-to-wall distances (>= 0).
        radius: canal radius.
    """

    depth: float
    elevation: float | None
    start: float
    stop: float
    min_separation: float
    max_separation: float
    radius: float

    def __post_init__(self) -> None:
        if not self.stop > self.start:
            raise ValueError(f"stop ({self.stop}) must exceed start ({self.start})")
        if not 0 <= self.min_separation <= self.max_separation:
            raise ValueError("separations must satisfy 0 <= min_separation <= max_separation")
        check_positive(self.radius, "radius")

    @property
    def ndim(self) -> int:
        return 2 if self.elevation is None else 3

    def separation(self, lateral: np.ndarray) -> np.ndarray:
        """Wall-to-wall distance at lateral positions ``lateral`` (lambda)."""
        slope = (self.max_separation - self.min_separation) / (self.stop - self.start)
        return self.min_separation + slope * (np.asarray(lateral, dtype=np.float64) - self.start)

    def centre_depths(self, lateral: np.ndarray) -> np.ndarray:
        """Depths ``(n, 2)`` of the upper and lower canals' centrelines at ``lateral``."""
        half = 0.5 * self.separation(lateral) + self.radius
        return np.stack([self.depth - half, self.depth + half], axis=-1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> CanalPair | None:
        """The pair an acquisition's metadata describes, or None if it holds none."""
        if METADATA_KEY not in metadata:
            return None
        try:
            return cls(**metadata[METADATA_KEY])
        except TypeError as err:
            raise ValueError(f"metadata {METADATA_KEY!r} is not a canal pair ({err})") from None


def _bubbles(
    pair: CanalPair,
    n_frames: int,
    concentration: float,
    speed: float,
    lateral_range: tuple[float, float],
    amplitude_sigma: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Frames, positions, track ids and amplitudes of the bubbles inside ``lateral_range``."""
    enter, leave = lateral_range
    transit = (leave - enter) / speed
    rate = concentration / 2.0 / transit  # bubbles per frame and canal
    frames, positions, tracks, amplitudes = [], [], [], []
    track = 0
    for canal in (0, 1):
        births = rng.uniform(-transit, n_frames, rng.poisson(rate * (n_frames + transit)))
        for birth in births:
            visible = np.arange(max(0, int(np.ceil(birth))), n_frames)
            lateral = enter + speed * (visible - birth)
            visible, lateral = visible[lateral < leave], lateral[lateral < leave]
            if not len(visible):
                continue
            if pair.ndim == 2:
                offset = rng.uniform(-pair.radius, pair.radius, 1)
            else:
                angle, r = rng.uniform(0, 2 * np.pi), pair.radius * np.sqrt(rng.uniform())
                offset = r * np.array([np.cos(angle), np.sin(angle)])
            columns = [pair.centre_depths(lateral)[:, canal] + offset[0]]
            if pair.ndim == 3:
                columns.append(np.full(len(visible), pair.elevation + offset[1]))
            frames.append(visible)
            positions.append(np.column_stack([*columns, lateral]))
            tracks.append(np.full(len(visible), track))
            amplitudes.append(
                np.full(len(visible), np.exp(amplitude_sigma * rng.standard_normal()))
            )
            track += 1
    if not frames:
        return (np.zeros(0, np.int64), np.zeros((0, pair.ndim)), np.zeros(0, np.int64), np.zeros(0))
    frames, positions, tracks, amplitudes = map(
        np.concatenate, (frames, positions, tracks, amplitudes)
    )
    order = np.argsort(frames, kind="stable")
    return frames[order], positions[order], tracks[order], amplitudes[order]


def simulate_canal_pair(
    shape: Sequence[int],
    n_frames: int,
    concentration: float,
    *,
    seed: int = 0,
    min_separation: float = 0.0,
    max_separation: float = 2.0,
    radius: float = 0.1,
    speed: float = 0.25,
    pixel_size: float | Sequence[float] = 0.5,
    frame_rate: float = 1000.0,
    psf_fwhm: tuple[float, float] = (0.65, 1.25),
    snr_db: float | None = 30.0,
    amplitude_sigma: float = 0.5,
    center_frequency: float = 15.6e6,
    sound_speed: float = 1540.0,
    progress: bool = True,
) -> UlmAcquisition:
    """Simulate bubbles flowing through a pair of diverging canals (see the module docstring).

    Args:
        shape: spatial grid ``(nz, nx)`` or ``(nz, ny, nx)``; axis 0 is depth.
        n_frames: number of frames.
        concentration: mean number of bubbles in the field per frame, both canals together.
        min_separation, max_separation: wall-to-wall distance at the left and right edges of
            the field, lambda.
        radius: canal radius, lambda.
        speed: bubble speed along the canals, lambda per frame.
        pixel_size, frame_rate, psf_fwhm, snr_db, amplitude_sigma, center_frequency,
            sound_speed, progress: as in :func:`blockrecon.ulm.simulate.simulate_acquisition`.

    Returns:
        :class:`UlmAcquisition` whose ``metadata["canal_pair"]`` holds the :class:`CanalPair`.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 3:
        raise ValueError(f"shape must be 2 or 3 sizes of at least 3 voxels, got {shape}")
    ndim = len(shape)
    check_positive_int(n_frames, "n_frames")
    check_positive(concentration, "concentration", allow_zero=True)
    check_positive(speed, "speed")
    check_positive(amplitude_sigma, "amplitude_sigma", allow_zero=True)
    pixel = check_per_axis("pixel_size", pixel_size, ndim)
    fwhm = check_per_axis("psf_fwhm", psf_fwhm, 2)
    fwhm = (fwhm[0],) + (fwhm[1],) * (ndim - 1)
    low, high = -0.5 * pixel, (np.array(shape) - 0.5) * pixel
    pair = CanalPair(
        depth=float(0.5 * (low[0] + high[0])),
        elevation=None if ndim == 2 else float(0.5 * (low[1] + high[1])),
        start=float(low[-1]),
        stop=float(high[-1]),
        min_separation=float(min_separation),
        max_separation=float(max_separation),
        radius=float(radius),
    )
    outer = pair.centre_depths(np.array([pair.stop]))[0] + np.array([-radius, radius])
    if outer[0] < low[0] or outer[1] > high[0]:
        raise ValueError(
            f"the canals (outer walls at depths {outer[0]:.3g}..{outer[1]:.3g} lambda) do not fit "
            f"in the field's depth {low[0]:.3g}..{high[0]:.3g}; lower max_separation or radius"
        )
    rng = np.random.default_rng(seed)
    frames, positions, tracks, amplitudes = _bubbles(
        pair, n_frames, concentration, speed, (pair.start, pair.stop), amplitude_sigma, rng
    )
    iq = render_bubbles(
        shape, n_frames, frames, positions, amplitudes, pixel, fwhm, progress=progress
    )
    if snr_db is not None:
        add_white_noise(iq, snr_db, rng)
    check_positive(sound_speed, "sound_speed")
    check_positive(center_frequency, "center_frequency")
    metadata = {
        "simulator": "blockrecon.ulm.canals.simulate_canal_pair",
        "seed": seed,
        "concentration": concentration,
        "speed": speed,
        "psf_fwhm": list(fwhm),
        "snr_db": snr_db,
        "amplitude_sigma": amplitude_sigma,
        "center_frequency": center_frequency,
        "sound_speed": sound_speed,
        METADATA_KEY: pair.to_dict(),
    }
    return UlmAcquisition(
        iq=torch.from_numpy(iq),
        positions=torch.from_numpy(positions.astype(np.float32)),
        frames=torch.from_numpy(frames.astype(np.int64)),
        track_ids=torch.from_numpy(tracks.astype(np.int64)),
        amplitudes=torch.from_numpy(amplitudes.astype(np.float32)),
        pixel_size=tuple(float(p) for p in pixel),
        frame_rate=float(frame_rate),
        wavelength=float(sound_speed / center_frequency),
        metadata=metadata,
    )


def canal_profiles(
    density: torch.Tensor,
    pixel_size: float | Sequence[float],
    upsampling: int,
    pair: CanalPair,
) -> tuple[np.ndarray, np.ndarray]:
    """Density profiles across the canal pair, one per fine lateral column along it (more than
    ``SECTION_MARGIN`` from either end).

    Args:
        density: ``(*fine_shape)`` map on the grid ``upsampling`` times finer than the image
            grid (see :mod:`blockrecon.ulm.maps`), 2 or 3 axes as ``pair``.
        pixel_size: image voxel size, lambda.
        upsampling: fine pixels per image voxel.
        pair: the canals.

    Returns:
        ``(profiles (n_columns, n_samples), separations (n_columns,))``: each column's samples
        along depth from just above the upper canal to just below the lower one (see the module
        docstring; shorter profiles are padded with zeros at their end), and its true
        wall-to-wall distance in lambda.
    """
    if not isinstance(density, torch.Tensor) or density.ndim != pair.ndim:
        shape = tuple(density.shape) if isinstance(density, torch.Tensor) else type(density)
        raise ValueError(
            f"density must be a {pair.ndim}D tensor like the canal pair, got shape {shape}"
        )
    upsampling = check_positive_int(upsampling, "upsampling")
    pixel = check_per_axis("pixel_size", pixel_size, pair.ndim)
    volume = density.detach().cpu().double().numpy()
    centres = [
        cell_centres(torch.arange(n, dtype=torch.float64)[:, None], [p], upsampling)[:, 0].numpy()
        for n, p in zip(volume.shape, pixel, strict=True)
    ]
    if pair.ndim == 3:
        near = np.abs(centres[1] - pair.elevation) <= pair.radius
        near[np.argmin(np.abs(centres[1] - pair.elevation))] = True
        volume = volume[:, near, :].sum(axis=1)
    lateral = centres[-1]
    columns = np.flatnonzero(
        (lateral >= pair.start + SECTION_MARGIN) & (lateral <= pair.stop - SECTION_MARGIN)
    )
    if not len(columns):
        raise ValueError("no fine column of the map lies along the canal pair")
    bounds = pair.centre_depths(lateral[columns])
    top = bounds[:, 0] - pair.radius - PROFILE_MARGIN
    bottom = bounds[:, 1] + pair.radius + PROFILE_MARGIN
    rows = [
        np.flatnonzero((centres[0] >= a) & (centres[0] <= b))
        for a, b in zip(top, bottom, strict=True)
    ]
    profiles = np.zeros((len(columns), max(len(r) for r in rows)))
    for i, (column, r) in enumerate(zip(columns, rows, strict=True)):
        profiles[i, : len(r)] = volume[r, column]
    return profiles, pair.separation(lateral[columns])


def canal_pair_gap(
    density: torch.Tensor,
    truth_density: torch.Tensor,
    pixel_size: float | Sequence[float],
    upsampling: int,
    pair: CanalPair,
) -> float:
    """PALA's gap (lambda) of a density map of the canal pair: profiles of ``density`` at the
    threshold of 3 % of the largest sample of the profiles of ``truth_density`` (the map of the
    true tracks on the same grid); see :func:`blockrecon.ulm.pala_scores.canal_gap`."""
    if not isinstance(truth_density, torch.Tensor) or not isinstance(density, torch.Tensor):
        raise ValueError("density and truth_density must be tensors")
    if truth_density.shape != density.shape:
        raise ValueError(
            f"truth_density has shape {tuple(truth_density.shape)}, density "
            f"{tuple(density.shape)}: they must share the grid"
        )
    truth, _ = canal_profiles(truth_density, pixel_size, upsampling, pair)
    if not truth.max() > 0:
        raise ValueError("no true track crosses the canal pair's sections")
    profiles, separations = canal_profiles(density, pixel_size, upsampling, pair)
    return canal_gap(profiles, separations, GAP_THRESHOLD_FRACTION * truth.max())
