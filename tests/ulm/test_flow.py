"""Flow: bubbles move smoothly along their tracks, no faster than the Poiseuille peak."""

import numpy as np

from blockrecon.ulm import simulate_acquisition


def _small(seed=0, **kw):
    kw.setdefault("progress", False)
    return simulate_acquisition((24, 24), 64, 10.0, seed=seed, **kw)


def test_bubbles_move_smoothly_along_tracks():
    acq = _small(4)
    ids, frames, pos = (t.numpy() for t in (acq.track_ids, acq.frames, acq.positions))
    order = np.lexsort((frames, ids))
    same = (ids[order][1:] == ids[order][:-1]) & (np.diff(frames[order]) == 1)
    step = np.linalg.norm(np.diff(pos[order], axis=0), axis=1)[same]
    # Poiseuille peak speed in the widest (40 um) vessel: 2 x 0.375/frame x 0.405 lambda; the
    # radial offset turns with the centreline, adding a little at segment joints.
    fastest = 2 * 0.375 * 40e-6 / acq.wavelength
    assert same.sum() > 100 and step.max() < 1.1 * fastest and step.min() > 0
