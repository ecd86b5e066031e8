"""SVD clutter filter: static tissue removed, the moving bubble kept."""

import numpy as np
import torch

from blockrecon.ulm import localize, svd_clutter_filter
from blockrecon.ulm.render import render_bubbles

FWHM = (0.65, 1.25)


def test_svd_filter_removes_static_tissue_keeps_moving_bubble():
    rng = np.random.default_rng(1)
    n = 40
    tissue = 30.0 * (rng.standard_normal((16, 16)) + 1j * rng.standard_normal((16, 16)))
    path = np.column_stack([np.full(n, 8.0), np.linspace(3.0, 13.0, n)])
    bubble = render_bubbles(
        (16, 16), n, np.arange(n), path * 0.5, np.ones(n), np.full(2, 0.5), FWHM, progress=False
    )
    iq = torch.from_numpy((bubble + tissue[None]).astype(np.complex64))
    filtered = svd_clutter_filter(iq, 1)
    # Tissue (30x the bubble, 900x its power) is gone; the bubble is still where it was.
    assert float((filtered.abs() ** 2).mean()) < 1e-3 * float((iq.abs() ** 2).mean())
    positions, frames = localize(filtered, 0.5, threshold=0.5)
    assert torch.equal(frames, torch.arange(n))
    assert np.linalg.norm(positions.numpy() - path * 0.5, axis=1).max() < 0.1
    assert torch.equal(svd_clutter_filter(iq, 0), iq)
