"""Seeded synthetic short-axis cine MRI (bSSFP-like) with cardiac labels.

Labels follow ACDC: 0 background, 1 right-ventricle (RV) cavity, 2 left-ventricle (LV)
myocardium, 3 LV blood pool (papillary muscles included). Each subject gets its own anatomy
(LV size and shape, wall thickness and its variation around the ring, RV crescent, epicardial
fat, lungs, liver, descending aorta, chest wall), contracts over the cardiac cycle (ejection
fraction drawn per subject, myocardial area conserved so the wall thickens in systole), is
rendered at ``oversample`` times the output resolution and block-averaged (partial volume,
labels by majority vote), multiplied by a smooth coil bias field and a smooth phase, and gets
complex Gaussian noise whose magnitude is Rician.

Two scales: ``"human"`` (heart small in the field of view, thin wall, large RV, epicardial fat)
and ``"small_animal"`` (heart large in the field of view, thick wall, small RV, little fat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

SCALES = ("human", "small_animal", "mixed")
NUM_CLASSES = 4
BACKGROUND, RV, MYO, LV = 0, 1, 2, 3


@dataclass(frozen=True)
class _Subject:
    """One heart and its surroundings; lengths in output pixels, angles in radians."""

    center: np.ndarray
    rotation: float
    r_lv: float
    ejection: float
    shape: np.ndarray  # (a2, phase2, a3, phase3) endocardial harmonics
    ring_area: float
    wall_var: np.ndarray  # (amplitude, phase) of wall thickness around the ring
    rv: np.ndarray  # (direction, half-depth, half-width, ejection)
    papillary: np.ndarray  # (angle, angular separation, radius fraction)
    fat: np.ndarray  # (width, direction, extent)
    body: np.ndarray  # (semi-axis x, semi-axis y, fat width)
    intensity: dict
    snr: float
    bias: np.ndarray
    phase: np.ndarray


def _draw_subject(rng: np.random.Generator, size: int, scale: str) -> _Subject:
    human = scale == "human"
    r_lv = size * rng.uniform(0.075, 0.11) if human else size * rng.uniform(0.10, 0.145)
    wall = max(2.0, r_lv * (rng.uniform(0.3, 0.5) if human else rng.uniform(0.5, 0.75)))
    rv_depth = r_lv * (rng.uniform(0.6, 1.0) if human else rng.uniform(0.4, 0.7))
    rv_width = r_lv * (rng.uniform(1.3, 1.9) if human else rng.uniform(1.0, 1.5))
    body = (
        size * rng.uniform(0.42, 0.49),
        size * (rng.uniform(0.32, 0.42) if human else rng.uniform(0.38, 0.47)),
        rng.uniform(2.0, 5.0) if human else rng.uniform(0.5, 2.0),
    )
    fat_width = rng.uniform(0.5, 3.0) if human else rng.uniform(0.0, 1.0)
    blood = rng.uniform(0.85, 1.15)
    return _Subject(
        center=size / 2 + size * rng.uniform(-0.07, 0.07, 2),
        rotation=rng.uniform(-0.5, 0.5),
        r_lv=r_lv,
        ejection=rng.uniform(0.4, 0.7),
        shape=np.array(
            [
                rng.uniform(0, 0.12),
                rng.uniform(0, np.pi),
                rng.uniform(0, 0.05),
                rng.uniform(0, 2 * np.pi),
            ]
        ),
        ring_area=(r_lv + wall) ** 2 - r_lv**2,
        wall_var=np.array([rng.uniform(0, 0.35), rng.uniform(0, 2 * np.pi)]),
        rv=np.array([np.pi + rng.uniform(-0.4, 0.4), rv_depth, rv_width, rng.uniform(0.3, 0.6)]),
        papillary=np.array(
            [rng.uniform(0, 2 * np.pi), rng.uniform(1.4, 2.2), rng.uniform(0.12, 0.2)]
        ),
        fat=np.array([fat_width, rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.6)]),
        body=np.array(body),
        intensity={
            "lv": blood,
            "rv": blood * rng.uniform(0.85, 1.05),
            "myo": rng.uniform(0.22, 0.4),
            "fat": rng.uniform(0.65, 0.95),
            "tissue": rng.uniform(0.25, 0.45),
            "liver": rng.uniform(0.35, 0.55),
            "lung": rng.uniform(0.02, 0.08),
            "aorta": blood * rng.uniform(0.8, 1.1),
        },
        snr=rng.uniform(8.0, 30.0),
        bias=rng.uniform(-0.35, 0.35, 5),
        phase=rng.uniform(-1.0, 1.0, 3),
    )


def _contraction(t: float) -> float:
    """0 at end-diastole (t=0), 1 at end-systole (t=0.4), smooth relaxation back to 0 at t=1."""
    return (
        float(np.sin(np.pi * t / 0.8) ** 2)
        if t < 0.4
        else float(np.cos(np.pi * (t - 0.4) / 1.2) ** 2)
    )


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0
) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def _render_fine(subj: _Subject, t: float, size: int, oversample: int):
    """Intensity and label maps on the fine grid of (size*oversample)^2 points."""
    m = size * oversample
    coord = (np.arange(m) + 0.5) / oversample
    y, x = np.meshgrid(coord, coord, indexing="ij")
    cx, cy = subj.center[1], subj.center[0]
    it = subj.intensity
    img = np.zeros((m, m), np.float32)
    lab = np.zeros((m, m), np.int64)
    # Surroundings (painted first; the heart overwrites them).
    bx, by, bfat = subj.body
    img[_ellipse(x, y, size / 2, size / 2, bx, by)] = it["fat"]
    inside = _ellipse(x, y, size / 2, size / 2, bx - bfat, by - bfat)
    img[inside] = it["tissue"]
    img[
        _ellipse(
            x, y, cx + 1.2 * subj.r_lv, cy + 2.2 * subj.r_lv, 2.5 * subj.r_lv, 1.6 * subj.r_lv, 0.4
        )
        & inside
    ] = it["liver"]
    for side in (-1, 1):
        img[
            _ellipse(
                x,
                y,
                cx + side * 3.2 * subj.r_lv,
                cy - 0.3 * subj.r_lv,
                1.6 * subj.r_lv,
                2.6 * subj.r_lv,
                side * 0.3,
            )
            & inside
        ] = it["lung"]
    img[
        _ellipse(
            x, y, cx + 0.6 * subj.r_lv, cy + 2.6 * subj.r_lv, 0.45 * subj.r_lv, 0.45 * subj.r_lv
        )
    ] = it["aorta"]
    # Heart in polar coordinates around the LV centre, rotated per subject.
    c = _contraction(t)
    dx, dy = x - cx, y - cy
    r = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx) - subj.rotation
    a2, p2, a3, p3 = subj.shape
    r_endo = (
        subj.r_lv
        * np.sqrt(1 - subj.ejection * c)
        * (1 + a2 * np.cos(2 * (theta - p2)) + a3 * np.cos(3 * (theta - p3)))
    )
    area = subj.ring_area * (1 + subj.wall_var[0] * np.cos(theta - subj.wall_var[1]))
    r_epi = np.maximum(np.sqrt(r_endo**2 + area), r_endo + 2.0)
    fat_w, fat_dir, fat_ext = subj.fat
    fat = (r <= r_epi + fat_w) & (np.cos(theta - fat_dir) > fat_ext)
    img[fat] = it["fat"]
    # RV: crescent around the septum (an ellipse reaching into the LV, minus the LV epicardium)
    # with a thin free wall.
    rv_dir, depth, width, rv_ej = subj.rv
    rv_dir += subj.rotation
    r_epi_mean = np.sqrt((subj.r_lv**2) * (1 - subj.ejection * c) + subj.ring_area)
    outer, inner = r_epi_mean + depth * np.sqrt(1 - rv_ej * c), 0.2 * r_epi_mean
    half, dist = (outer - inner) / 2, (outer + inner) / 2
    rcx, rcy = cx + dist * np.cos(rv_dir), cy + dist * np.sin(rv_dir)
    outside_epi = r > r_epi
    rv_wall = _ellipse(x, y, rcx, rcy, half + 1.2, width + 1.2, rv_dir) & outside_epi
    rv_cav = _ellipse(x, y, rcx, rcy, half, width, rv_dir) & outside_epi
    img[rv_wall], lab[rv_wall] = it["myo"], BACKGROUND
    img[rv_cav], lab[rv_cav] = it["rv"], RV
    myo = (r <= r_epi) & ~(r <= r_endo)
    img[myo], lab[myo] = it["myo"], MYO
    lv = r <= r_endo
    img[lv], lab[lv] = it["lv"], LV
    # Papillary muscles: myocardial signal inside the cavity, labelled as LV blood pool.
    angle, sep, frac = subj.papillary
    r_cav = subj.r_lv * np.sqrt(1 - subj.ejection * c)
    for a in (angle, angle + sep):
        px = cx + 0.6 * r_cav * np.cos(a + subj.rotation)
        py = cy + 0.6 * r_cav * np.sin(a + subj.rotation)
        img[_ellipse(x, y, px, py, frac * r_cav, frac * r_cav) & lv] = it["myo"]
    return img, lab


def _smooth_field(coeffs: np.ndarray, size: int) -> np.ndarray:
    """exp of a low-order polynomial over [-1, 1]^2 (coil bias field or phase)."""
    u = np.linspace(-1, 1, size)
    y, x = np.meshgrid(u, u, indexing="ij")
    terms = [x, y, x * y, x**2 - 1 / 3, y**2 - 1 / 3][: len(coeffs)]
    return sum(cf * tm for cf, tm in zip(coeffs, terms, strict=False))


def _render(
    subj: _Subject, t: float, size: int, oversample: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    img, lab = _render_fine(subj, t, size, oversample)
    blocks = (size, oversample, size, oversample)
    img = img.reshape(blocks).mean(axis=(1, 3))
    counts = np.stack([(lab == k).reshape(blocks).sum(axis=(1, 3)) for k in range(NUM_CLASSES)])
    label = counts.argmax(axis=0)
    texture = 1 + 0.25 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
    signal = img * texture * np.exp(_smooth_field(subj.bias, size))
    signal = signal * np.exp(1j * np.pi * _smooth_field(subj.phase, size))
    sigma = subj.intensity["lv"] / subj.snr
    noise = sigma * (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size)))
    return np.abs(signal + noise).astype(np.float32), label


def synthetic_cine(
    n_subjects: int = 4,
    n_frames: int = 10,
    size: int = 128,
    *,
    scale: str = "mixed",
    seed: int = 0,
    oversample: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Short-axis cine images of ``n_subjects`` synthetic hearts over one cardiac cycle.

    Args:
        n_subjects: number of distinct hearts.
        n_frames: time frames per heart, evenly spread over the cycle (frame 0 end-diastole).
        size: image height and width in pixels.
        scale: ``"human"``, ``"small_animal"`` or ``"mixed"`` (alternating by subject).
        seed: the same seed gives the same images.
        oversample: partial-volume rendering factor (fine grid = size*oversample).

    Returns:
        images float32 (n_subjects*n_frames, 1, size, size), magnitude (blood pool about 1),
        subject-major order; labels int64 (n_subjects*n_frames, size, size) in 0..3.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    for name, value, low in (
        ("n_subjects", n_subjects, 1),
        ("n_frames", n_frames, 1),
        ("size", size, 32),
        ("oversample", oversample, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    images = np.empty((n_subjects * n_frames, 1, size, size), np.float32)
    labels = np.empty((n_subjects * n_frames, size, size), np.int64)
    for s in range(n_subjects):
        kind = scale if scale != "mixed" else SCALES[s % 2]
        subj = _draw_subject(rng, size, kind)
        for f in range(n_frames):
            i = s * n_frames + f
            images[i, 0], labels[i] = _render(subj, f / n_frames, size, oversample, rng)
    return torch.from_numpy(images), torch.from_numpy(labels)
