"""Linking per-frame bubble positions into tracks (Hungarian assignment with gap closing).

Frame by frame, the detections of the frame are assigned to the open tracks (those whose last
detection is at most ``max_gap + 1`` frames back) by a minimum-total-distance assignment
(``scipy.optimize.linear_sum_assignment``); an assignment farther than ``max_linking_distance``
is refused and the detection starts a new track. Tracks with fewer than ``min_length``
detections are discarded at the end.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from blockrecon.checks import check_positive
from blockrecon.ulm._checks import check_points

#: Track id given to detections that belong to no kept track.
UNTRACKED = -1
#: Defaults of the tracking of conventional ULM and of the networks' maps: largest step between
#: linked detections (lambda), missing frames bridged, detections of a kept track.
MAX_LINKING_DISTANCE = 0.5
MAX_GAP = 1
MIN_LENGTH = 5


def _assign(
    previous: np.ndarray, current: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``previous`` and ``current`` linked by a minimum-cost assignment within
    ``max_distance``."""
    cost = np.linalg.norm(previous[:, None, :] - current[None, :, :], axis=-1)
    forbidden = cost > max_distance
    rows, cols = linear_sum_assignment(np.where(forbidden, 1e6 * (1.0 + max_distance), cost))
    allowed = ~forbidden[rows, cols]
    return rows[allowed], cols[allowed]


def link_tracks(
    positions: torch.Tensor,
    frames: torch.Tensor,
    max_linking_distance: float,
    *,
    max_gap: int = 1,
    min_length: int = 3,
) -> torch.Tensor:
    """Track id of every detection.

    Args:
        positions: float ``(n, ndim)`` detections, lambda.
        frames: int ``(n,)`` frame of each detection (any order).
        max_linking_distance: largest distance (lambda) between consecutive detections of a track.
        max_gap: number of missing frames a track may bridge (0: no gap closing).
        min_length: smallest number of detections of a kept track.

    Returns:
        int64 ``(n,)``: track ids ``0, 1, ...`` numbered by first appearance, or ``-1``
        (``UNTRACKED``) for detections in discarded tracks.
    """
    pos, frm = check_points(positions, frames, None)
    check_positive(max_linking_distance, "max_linking_distance")
    if int(max_gap) != max_gap or max_gap < 0 or int(min_length) != min_length or min_length < 1:
        raise ValueError(
            f"max_gap must be an int >= 0 and min_length an int >= 1, got {max_gap}, {min_length}"
        )
    order = np.argsort(frm, kind="stable")
    ids = np.full(len(frm), UNTRACKED, dtype=np.int64)
    open_ids = np.zeros(0, dtype=np.int64)
    open_last = np.zeros((0, pos.shape[1]))
    open_frame = np.zeros(0, dtype=np.int64)
    n_tracks = 0
    bounds = np.flatnonzero(np.diff(frm[order])) + 1
    for rows in np.split(order, bounds) if len(order) else []:
        frame = frm[rows[0]]
        alive = frame - open_frame <= max_gap + 1
        open_ids, open_last, open_frame = open_ids[alive], open_last[alive], open_frame[alive]
        linked_tracks, linked_rows = _assign(open_last, pos[rows], max_linking_distance)
        new_rows = np.setdiff1d(np.arange(len(rows)), linked_rows)
        ids[rows[linked_rows]] = open_ids[linked_tracks]
        ids[rows[new_rows]] = n_tracks + np.arange(len(new_rows))
        open_last[linked_tracks] = pos[rows[linked_rows]]
        open_frame[linked_tracks] = frame
        open_ids = np.concatenate([open_ids, ids[rows[new_rows]]])
        open_last = np.concatenate([open_last, pos[rows[new_rows]]])
        open_frame = np.concatenate([open_frame, np.full(len(new_rows), frame)])
        n_tracks += len(new_rows)
    return torch.from_numpy(_drop_short(ids, min_length))


def _drop_short(ids: np.ndarray, min_length: int) -> np.ndarray:
    """Set ids of tracks shorter than ``min_length`` to -1 and renumber the rest 0, 1, ..."""
    tracked = ids >= 0
    counts = np.bincount(ids[tracked], minlength=1)
    keep = counts >= min_length
    new_id = np.cumsum(keep) - 1
    out = np.full_like(ids, UNTRACKED)
    kept = tracked.copy()
    kept[tracked] = keep[ids[tracked]]
    out[kept] = new_id[ids[kept]]
    return out
