"""ULM acquisitions refuse inconsistent point tables."""

import dataclasses

import pytest

from blockrecon.ulm import simulate_acquisition


def _small(seed=0, **kw):
    kw.setdefault("progress", False)
    return simulate_acquisition((24, 24), 64, 10.0, seed=seed, **kw)


def test_inconsistent_point_tables_are_refused():
    acq = _small(7)
    n = len(acq.frames)
    assert n > 2
    shuffled = acq.frames.flip(0)
    with pytest.raises(ValueError, match="sorted ascending"):
        dataclasses.replace(acq, frames=shuffled)
    beyond = acq.frames.clone()
    beyond[-1] = acq.n_frames
    with pytest.raises(ValueError, match=f"below the {acq.n_frames} frames"):
        dataclasses.replace(acq, frames=beyond)
    with pytest.raises(ValueError, match="pixel_size"):
        dataclasses.replace(acq, pixel_size=(float("nan"),) * len(acq.pixel_size))
