"""Tracking with gap closing (the maps built from tracks: test_ulm_maps.py)."""

import numpy as np
import pytest
import torch

from blockrecon.ulm import link_tracks


def _table(points, frames):
    return torch.tensor(points, dtype=torch.float32), torch.tensor(frames)


def test_straight_moving_bubble_is_one_track():
    frames = np.arange(20)
    points = np.column_stack([np.full(20, 5.0), 1.0 + 0.2 * frames])
    ids = link_tracks(*_table(points, frames), max_linking_distance=0.5)
    assert torch.equal(ids, torch.zeros(20, dtype=torch.int64))


def test_gap_within_allowance_is_bridged_larger_gap_splits():
    frames = np.array([0, 1, 2, 3, 5, 6, 7, 8, 11, 12, 13, 14])  # gaps of 1 and 2 frames
    points = np.column_stack([np.full(len(frames), 2.0), 0.1 * frames])
    ids = link_tracks(*_table(points, frames), 0.5, max_gap=1, min_length=3).numpy()
    assert ids.tolist() == [0] * 8 + [1] * 4
    ids = link_tracks(*_table(points, frames), 0.5, max_gap=2, min_length=3).numpy()
    assert ids.tolist() == [0] * 12
    ids = link_tracks(*_table(points, frames), 0.5, max_gap=0, min_length=3).numpy()
    assert ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_two_bubbles_are_kept_apart_and_short_tracks_dropped():
    frames = np.repeat(np.arange(6), 2)
    a = np.column_stack([np.full(6, 1.0), 0.1 * np.arange(6)])
    b = np.column_stack([np.full(6, 1.4), 3.0 - 0.1 * np.arange(6)])
    points = np.stack([b, a], axis=1).reshape(-1, 2)  # interleaved, b listed first
    ids = link_tracks(*_table(points, frames), 0.3, min_length=3).numpy()
    assert set(ids[0::2]) == {0} and set(ids[1::2]) == {1}
    # A far jump breaks linking: the stray detection forms a one-point track and is dropped.
    frames = np.append(np.arange(5), 5)
    points = np.vstack([a[:5], [[9.0, 9.0]]])
    ids = link_tracks(*_table(points, frames), 0.3, min_length=2).numpy()
    assert ids.tolist() == [0] * 5 + [-1]


def test_bad_tracking_arguments_are_named():
    pos, frm = _table([[0.0, 0.0]], [0])
    with pytest.raises(ValueError, match="max_linking_distance"):
        link_tracks(pos, frm, -1.0)
    with pytest.raises(ValueError, match="max_gap"):
        link_tracks(pos, frm, 1.0, max_gap=-1)
    with pytest.raises(ValueError, match="frames of positions"):
        link_tracks(pos, torch.tensor([-1]), 1.0)
    with pytest.raises(ValueError, match="positions must have shape"):
        link_tracks(torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64), 1.0)
