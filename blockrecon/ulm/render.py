"""Beamformed IQ rendering: bubble point-spread functions, tissue clutter, white noise.

The point-spread function (PSF) of a bubble at ``p`` evaluated at voxel centre ``x`` is

    a * exp(-sum_d (x_d - p_d)^2 / (2 sigma_d^2)) * exp(i 4 pi (x_0 - p_0) / lambda)

with axis 0 the depth (axial) axis, ``sigma_d = FWHM_d / (2 sqrt(2 ln 2))`` and the two-way
carrier along depth. Lengths in lambda; voxel ``i`` along axis ``d`` is centred at
``i * pixel_size[d]``. The PSF is evaluated only on a +-3 sigma neighbourhood of each bubble, as an
outer product of per-axis factors, and accumulated with ``np.bincount`` one chunk of frames at a
time.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from blockrecon.progress import progress_bar

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def psf_sigma(psf_fwhm: tuple[float, ...]) -> np.ndarray:
    """Gaussian standard deviations (lambda) of a PSF given by its per-axis FWHM (lambda)."""
    return np.asarray(psf_fwhm, dtype=np.float64) * FWHM_TO_SIGMA


def _axis_factors(
    coord: np.ndarray, size: int, pixel: float, sigma: float, carrier: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(n, w)`` and PSF factors ``(n, w)`` along one axis for ``n`` bubbles."""
    half = int(np.ceil(3.0 * sigma / pixel))
    index = np.rint(coord / pixel).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    delta = index * pixel - coord[:, None]
    factor = np.exp(-0.5 * (delta / sigma) ** 2).astype(np.complex128 if carrier else np.float64)
    if carrier:
        factor *= np.exp(4j * np.pi * delta)
    factor[(index < 0) | (index >= size)] = 0.0
    return np.clip(index, 0, size - 1), factor


def _render_chunk(
    out: np.ndarray,
    frames: np.ndarray,
    positions: np.ndarray,
    amplitudes: np.ndarray,
    pixel_size: np.ndarray,
    sigma: np.ndarray,
) -> None:
    """Add the PSFs of bubbles (``frames`` relative to ``out``'s first frame) into ``out``."""
    spatial = out.shape[1:]
    flat = frames.astype(np.int64)
    values = amplitudes.astype(np.complex128)
    for d, size in enumerate(spatial):
        index, factor = _axis_factors(positions[:, d], size, pixel_size[d], sigma[d], d == 0)
        flat = flat[..., None] * size + index.reshape(
            index.shape[:1] + (1,) * (flat.ndim - 1) + index.shape[1:]
        )
        values = values[..., None] * factor.reshape(
            flat.shape[:1] + (1,) * (values.ndim - 1) + factor.shape[1:]
        )
    flat, values = flat.ravel(), values.ravel()
    real = np.bincount(flat, weights=values.real, minlength=out.size)
    imag = np.bincount(flat, weights=values.imag, minlength=out.size)
    out += (real + 1j * imag).reshape(out.shape).astype(out.dtype)


def render_bubbles(
    shape: tuple[int, ...],
    n_frames: int,
    frames: np.ndarray,
    positions: np.ndarray,
    amplitudes: np.ndarray,
    pixel_size: np.ndarray,
    psf_fwhm: tuple[float, ...],
    frames_per_chunk: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """Noise-free IQ of point scatterers.

    Args:
        shape: spatial grid shape ``(nz, nx)`` or ``(nz, ny, nx)``.
        n_frames: number of frames.
        frames: int ``(n,)``, frame of each scatterer, sorted ascending.
        positions: float ``(n, ndim)``, positions in lambda.
        amplitudes: float ``(n,)``, scattering amplitudes.
        pixel_size: float ``(ndim,)``, voxel size in lambda.
        psf_fwhm: per-axis FWHM in lambda, depth first.
        frames_per_chunk: frames accumulated per ``np.bincount`` call (memory vs. speed).
        progress: show a progress bar (:func:`blockrecon.progress.progress_bar`).

    Returns:
        complex64 ``(n_frames, *shape)``.
    """
    iq = np.zeros((n_frames, *shape), dtype=np.complex64)
    sigma = psf_sigma(psf_fwhm)
    starts = range(0, n_frames, frames_per_chunk)
    for first in progress_bar(starts, "render", progress):
        last = min(first + frames_per_chunk, n_frames)
        lo, hi = np.searchsorted(frames, [first, last])
        if hi > lo:
            _render_chunk(
                iq[first:last],
                frames[lo:hi] - first,
                positions[lo:hi],
                amplitudes[lo:hi],
                pixel_size,
                sigma,
            )
    return iq


def tissue_clutter(
    shape: tuple[int, ...],
    n_frames: int,
    power_db: float,
    pixel_size: np.ndarray,
    psf_fwhm: tuple[float, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """Slowly varying tissue signal: two speckle patterns whose amplitude and phase drift over
    the acquisition (a rank-2 space-time signal, what an SVD filter removes).

    Its mean power per voxel is ``10^(power_db / 10)`` (relative to a unit-amplitude PSF peak).
    Returns complex64 ``(n_frames, *shape)``.
    """
    sigma_px = psf_sigma(psf_fwhm) / pixel_size
    patterns = []
    for _ in range(2):
        field = gaussian_filter(rng.standard_normal(shape), sigma_px) + 1j * gaussian_filter(
            rng.standard_normal(shape), sigma_px
        )
        patterns.append(field / np.sqrt(np.mean(np.abs(field) ** 2)))
    t = np.arange(n_frames) / max(n_frames, 1)
    phase = rng.uniform(0, 2 * np.pi, 2)
    drift = np.stack(
        [
            np.exp(1j * (2 * np.pi * 0.7 * t + phase[0])),
            0.5 * np.sin(2 * np.pi * 1.3 * t + phase[1]),
        ]
    )
    drift /= np.sqrt(np.mean(np.sum(np.abs(drift) ** 2, axis=0)))
    clutter = np.tensordot(drift.T, np.stack(patterns), axes=1)
    return (clutter * 10.0 ** (power_db / 20.0)).astype(np.complex64)


def add_white_noise(iq: np.ndarray, snr_db: float, rng: np.random.Generator) -> None:
    """Add circular complex white Gaussian noise in place; ``snr_db`` is the ratio of a
    unit-amplitude PSF peak power to the noise power per voxel, ``E|n|^2 = 10^(-snr_db / 10)``."""
    scale = np.float32(10.0 ** (-snr_db / 20.0) / np.sqrt(2.0))
    for frame in iq:  # one frame at a time keeps the temporary small
        noise = rng.standard_normal((2, *frame.shape), dtype=np.float32) * scale
        frame += noise[0] + 1j * noise[1]
