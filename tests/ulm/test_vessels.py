"""Vessel trees: simulated bubbles stay inside the vessels and the field of view."""

import numpy as np
import pytest

from blockrecon.ulm import simulate_acquisition


def distance_to_wall(
    points: np.ndarray, starts: np.ndarray, ends: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """Signed distance from each point to the nearest vessel wall, in lambda.

    Negative or zero means inside a vessel. ``points``: ``(n, ndim)``; ``starts``, ``ends``:
    ``(n_segments, ndim)`` segment end points; ``radii``: ``(n_segments,)``. Returns ``(n,)``.
    """
    best = np.full(len(points), np.inf)
    axis = ends - starts
    axis_sq = np.maximum(np.einsum("sd,sd->s", axis, axis), 1e-30)
    for chunk in np.array_split(np.arange(len(points)), max(1, len(points) // 2048)):
        rel = points[chunk, None, :] - starts[None]
        t = np.clip(np.einsum("psd,sd->ps", rel, axis) / axis_sq, 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * axis[None], axis=2)
        best[chunk] = np.min(dist - radii[None], axis=1)
    return best


@pytest.mark.parametrize("shape", [(32, 32), (12, 12, 12)])
def test_bubbles_stay_inside_vessels_and_field_of_view(shape):
    acq = simulate_acquisition(shape, 100, 15.0, seed=3, progress=False)
    vessels = acq.metadata["vessels"]
    pos = acq.positions.numpy().astype(np.float64)
    assert len(pos) > 100
    gap = distance_to_wall(pos, *(np.array(vessels[k]) for k in ("starts", "ends", "radii")))
    assert gap.max() <= 1e-5
    pixel = np.array(acq.pixel_size)
    assert np.all(pos >= -pixel / 2) and np.all(pos < (np.array(shape) - 0.5) * pixel)
