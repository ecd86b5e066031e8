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


def test_first_frames_keep_those_frames_and_their_truth():
    acq = _small(3)
    head = acq.first_frames(20)
    assert head.n_frames == 20 and head.spatial_shape == acq.spatial_shape
    kept = acq.frames < 20
    assert 0 < int(kept.sum()) < len(acq.frames)
    assert bool((head.iq == acq.iq[:20]).all())
    for name in ("positions", "frames", "track_ids", "amplitudes"):
        assert bool((getattr(head, name) == getattr(acq, name)[kept]).all()), name
    assert head.pixel_size == acq.pixel_size and head.metadata == acq.metadata
    assert acq.first_frames(acq.n_frames + 5) is acq
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_frames"):
            acq.first_frames(bad)
