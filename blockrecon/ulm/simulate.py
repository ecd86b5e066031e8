"""In-silico ULM acquisitions in 2D and 3D, in wavelength (lambda) units.

``simulate_acquisition`` grows a random vessel tree (Murray's law at bifurcations), lets bubbles
enter it by a Poisson process and flow downstream along Poiseuille stream lines, renders their
complex point-spread functions on the voxel grid, and optionally adds slowly varying tissue
clutter and white complex noise. The result carries the exact sub-voxel positions and track ids
of every bubble in every frame.

Bubble arrivals are calibrated so that the mean number of bubbles inside the field of view per
frame equals ``concentration``: the mean time a bubble spends in the field of view, ``T``, is
estimated from sample paths, arrivals then follow a Poisson process of rate
``concentration / T`` starting early enough (one longest path duration before frame 0) for the
population to be stationary from the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.physics.vessels import TreeParameters, random_vessel_tree
from blockrecon.ulm._checks import check_per_axis
from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.flow import FlowModel
from blockrecon.ulm.render import add_white_noise, render_bubbles, tissue_clutter

#: Paths sampled to calibrate the arrival rate.
N_CALIBRATION_PATHS = 256
#: Margin (lambda) around the field of view in which vessels grow.
TREE_MARGIN = 1.0


def _inside(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.all((points >= low) & (points < high), axis=1)


def _calibrate(
    flow: FlowModel, fov: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> tuple[float, float]:
    """Mean frames a bubble spends in the field of view, and the longest path duration."""
    in_fov, longest = [], 0.0
    for _ in range(N_CALIBRATION_PATHS):
        path = flow.sample_path(rng)
        times = np.arange(0.0, path.duration)
        in_fov.append(np.count_nonzero(_inside(flow.positions(path, times), *fov)))
        longest = max(longest, path.duration)
    return float(np.mean(in_fov)), longest


def _bubble_events(
    flow: FlowModel,
    n_frames: int,
    concentration: float,
    fov: tuple[np.ndarray, np.ndarray],
    amplitude_sigma: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Frames, positions, track ids and amplitudes of all bubbles inside the field of view."""
    mean_in_fov, longest = _calibrate(flow, fov, rng)
    if mean_in_fov == 0:
        raise ValueError(
            "the simulated vessels never cross the field of view; use a larger grid or another seed"
        )
    rate = concentration / mean_in_fov
    n_bubbles = rng.poisson(rate * (n_frames + longest))
    births = np.sort(rng.uniform(-longest, n_frames, n_bubbles))
    amplitudes = np.exp(amplitude_sigma * rng.standard_normal(n_bubbles))
    frames, positions, tracks, amps = [], [], [], []
    for bubble, birth in enumerate(births):
        path = flow.sample_path(rng)
        visible = np.arange(
            max(0, int(np.ceil(birth))), min(n_frames, int(np.ceil(birth + path.duration)))
        )
        if not len(visible):
            continue
        points = flow.positions(path, visible - birth)
        keep = _inside(points, *fov)
        frames.append(visible[keep])
        positions.append(points[keep])
        tracks.append(np.full(np.count_nonzero(keep), bubble))
        amps.append(np.full(np.count_nonzero(keep), amplitudes[bubble]))
    if not frames:
        ndim = len(fov[0])
        return (np.zeros(0, np.int64), np.zeros((0, ndim)), np.zeros(0, np.int64), np.zeros(0))
    frames, positions, tracks, amps = map(np.concatenate, (frames, positions, tracks, amps))
    order = np.argsort(frames, kind="stable")
    _, track_ids = np.unique(tracks[order], return_inverse=True)
    return frames[order], positions[order], track_ids.astype(np.int64), amps[order]


def _check_shape(shape: Sequence[int], n_frames: int) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 3:
        raise ValueError(f"shape must be 2 or 3 sizes of at least 3 voxels, got {shape}")
    check_positive_int(n_frames, "n_frames")
    return shape


def simulate_acquisition(
    shape: Sequence[int],
    n_frames: int,
    concentration: float,
    *,
    seed: int = 0,
    pixel_size: float | Sequence[float] = 0.5,
    frame_rate: float = 1000.0,
    psf_fwhm: tuple[float, float] = (0.65, 1.25),
    snr_db: float | None = 30.0,
    clutter_db: float | None = None,
    amplitude_sigma: float = 0.5,
    radius_range_um: tuple[float, float] = (5.0, 40.0),
    center_frequency: float = 15.6e6,
    sound_speed: float = 1540.0,
    speed_per_radius: float = 375.0,
    n_trees: int = 4,
    progress: bool = True,
) -> UlmAcquisition:
    """Simulate a ULM acquisition of bubbles flowing in a random microvessel tree.

    Args:
        shape: spatial grid ``(nz, nx)`` (2D) or ``(nz, ny, nx)`` (3D); axis 0 is depth.
        n_frames: number of frames.
        concentration: mean number of bubbles inside the field of view per frame (>= 0).
        seed: seed of the only random generator used; equal seeds give equal acquisitions.
        pixel_size: voxel size in lambda, one value or one per axis.
        frame_rate: frames per second (Hz).
        psf_fwhm: (axial, lateral) full width at half maximum of the PSF envelope, lambda.
        snr_db: peak power of a median-amplitude bubble over the noise power per voxel, in dB;
            ``None`` for no noise.
        clutter_db: mean tissue-clutter power per voxel relative to a median bubble's peak
            power, in dB; ``None`` (default) for no clutter.
        amplitude_sigma: standard deviation of the log of the bubble amplitudes (median 1).
        radius_range_um: smallest and largest vessel radius in micrometres.
        center_frequency: transmit frequency in Hz; with ``sound_speed`` it sets lambda.
        sound_speed: speed of sound in m/s.
        speed_per_radius: mean blood speed divided by vessel radius, in 1/s (375/s gives
            15 mm/s in a vessel of radius 40 um).
        n_trees: number of vessel trees entering the box around the field of view.
        progress: show a progress bar while rendering (:func:`blockrecon.progress.progress_bar`).

    Returns:
        :class:`UlmAcquisition` with complex64 IQ and the true positions (lambda), frames,
        track ids and amplitudes; ``metadata`` holds all parameters and the vessel tree.
    """
    shape = _check_shape(shape, n_frames)
    ndim = len(shape)
    check_positive(concentration, "concentration", allow_zero=True)
    for name, value in (
        ("frame_rate", frame_rate),
        ("center_frequency", center_frequency),
        ("sound_speed", sound_speed),
        ("speed_per_radius", speed_per_radius),
    ):
        check_positive(value, name)
    check_positive(amplitude_sigma, "amplitude_sigma", allow_zero=True)
    for name, value in (("snr_db", snr_db), ("clutter_db", clutter_db)):
        if value is not None and not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number of dB or None, got {value}")
    pixel = check_per_axis("pixel_size", pixel_size, ndim)
    fwhm = check_per_axis("psf_fwhm", psf_fwhm, 2)
    fwhm = (fwhm[0],) + (fwhm[1],) * (ndim - 1)
    radii = check_per_axis("radius_range_um", radius_range_um, 2)
    check_positive_int(n_trees, "n_trees")
    if radii[0] > radii[1]:
        raise ValueError(f"radius_range_um must be ascending, got {radius_range_um}")
    wavelength = sound_speed / center_frequency
    rng = np.random.default_rng(seed)

    fov = (-0.5 * pixel, (np.array(shape) - 0.5) * pixel)
    tree = random_vessel_tree(
        fov[0] - TREE_MARGIN,
        fov[1] + TREE_MARGIN,
        n_trees,
        TreeParameters(radius_range=tuple(radii * 1e-6 / wavelength)),
        rng,
    )
    flow = FlowModel(tree, speed_per_radius / frame_rate)
    frames, positions, track_ids, amplitudes = _bubble_events(
        flow, n_frames, concentration, fov, amplitude_sigma, rng
    )

    iq = render_bubbles(
        shape, n_frames, frames, positions, amplitudes, pixel, fwhm, progress=progress
    )
    if clutter_db is not None:
        iq += tissue_clutter(shape, n_frames, clutter_db, pixel, fwhm, rng)
    if snr_db is not None:
        add_white_noise(iq, snr_db, rng)

    metadata = {
        "simulator": "blockrecon.ulm.simulate_acquisition",
        "seed": seed,
        "concentration": concentration,
        "psf_fwhm": list(fwhm),
        "snr_db": snr_db,
        "clutter_db": clutter_db,
        "amplitude_sigma": amplitude_sigma,
        "radius_range_um": list(radii),
        "center_frequency": center_frequency,
        "sound_speed": sound_speed,
        "speed_per_radius": speed_per_radius,
        "n_trees": n_trees,
        "vessels": {
            "starts": tree.starts.tolist(),
            "ends": tree.ends.tolist(),
            "radii": tree.radii.tolist(),
            "parents": tree.parents.tolist(),
        },
    }
    return UlmAcquisition(
        iq=torch.from_numpy(iq),
        positions=torch.from_numpy(positions.astype(np.float32)),
        frames=torch.from_numpy(frames.astype(np.int64)),
        track_ids=torch.from_numpy(track_ids),
        amplitudes=torch.from_numpy(amplitudes.astype(np.float32)),
        pixel_size=tuple(float(p) for p in pixel),
        frame_rate=float(frame_rate),
        wavelength=float(wavelength),
        metadata=metadata,
    )
