"""Where a ULM network's false positives come from: next to a true bubble, and how many are
ghosts of it at its positions in the neighbouring frames.

On the held-out data of ``bench_ulm_accuracy.py`` (seed 1000 + c), the network's detections
are paired with the true bubbles by PALA's rule (greedy, within lambda/4,
:func:`blockrecon.ulm.metrics.pair_greedy`). For every unpaired detection (a false positive)
the nearest true bubble of its frame is found, and the detection's distance to that bubble's
track at frame offsets -2 .. +2 is measured. Per concentration the table gives the false
positives, the fraction within lambda/2 of a true bubble (near misses and duplicates, not
noise), the fraction whose nearest bubble went unpaired (``missed``: a detection placed more
than lambda/4 off, counted once as a false positive and once as a false negative; the rest
are duplicates of a paired bubble), their median distance to the track at each offset, the
ghosts (false positives at least twice as close to the track at another frame as to the bubble
itself: where the bubble was or will be, painted by the network's temporal context), and the
detections within lambda/2 of a bubble by its speed (quartiles, lambda per frame).

    python benchmarks/bench_ulm_false_positives.py --shape 32 32 32 --concentrations 4 38 152
"""

import argparse
from pathlib import Path

import numpy as np
from bench_ulm_accuracy import (
    BLOCK_FRAMES,
    add_held_out_arguments,
    held_out_network,
    held_out_simulations,
    write_held_out_rows,
)

from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.evaluation import detect_bubbles, scored_frames
from blockrecon.ulm.metrics import pair_greedy

RESULTS = Path(__file__).parent / "results"
OFFSETS = (-2, -1, 0, 1, 2)
MATCH = 0.25  # lambda: PALA's true-positive distance
NEAR = 0.5  # lambda


def track_speeds(positions: np.ndarray, frames: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Speed (lambda per frame) of every true bubble: its step to the next point of its track
    (the last point takes the previous step; NaN for a one-point track)."""
    speed = np.full(len(positions), np.nan)
    for track in np.unique(tracks):
        idx = np.flatnonzero(tracks == track)
        idx = idx[np.argsort(frames[idx])]
        if len(idx) > 1:
            step = np.linalg.norm(np.diff(positions[idx], axis=0), axis=1)
            step /= np.maximum(np.diff(frames[idx]), 1)
            speed[idx] = np.r_[step, step[-1]]
    return speed


def offset_distances(acq, detections: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(m, 5) distance of each detection to the track of the nearest true bubble of its frame
    at frame offsets -2 .. +2 (NaN where the track has no point then, or the frame no bubble)."""
    pos, frm, trk = (t.numpy() for t in (acq.positions, acq.frames, acq.track_ids))
    where = {(int(t), int(f)): i for i, (t, f) in enumerate(zip(trk, frm, strict=True))}
    out = np.full((len(detections), len(OFFSETS)), np.nan)
    for k, (d, f) in enumerate(zip(detections, frames, strict=True)):
        same = np.flatnonzero(frm == f)
        if not len(same):
            continue
        track = trk[same[np.argmin(np.linalg.norm(pos[same] - d, axis=1))]]
        for j, off in enumerate(OFFSETS):
            i = where.get((int(track), int(f) + off))
            if i is not None:
                out[k, j] = np.linalg.norm(pos[i] - d)
    return out


def near_missed_bubble(
    true_pos: np.ndarray,
    true_frm: np.ndarray,
    missed: np.ndarray,
    detections: np.ndarray,
    frames: np.ndarray,
) -> np.ndarray:
    """Bool ``(m,)``: the detection's nearest true bubble of its frame lies within lambda/2
    and was itself left unpaired (a mislocalized detection: one false positive and one false
    negative) rather than paired with another detection (a duplicate)."""
    out = np.zeros(len(detections), bool)
    for k, (d, f) in enumerate(zip(detections, frames, strict=True)):
        same = np.flatnonzero(true_frm == f)
        if len(same):
            gaps = np.linalg.norm(true_pos[same] - d, axis=1)
            nearest = np.argmin(gaps)
            out[k] = gaps[nearest] < NEAR and missed[same[nearest]]
    return out


def false_positive_row(model, acq) -> dict:
    """The table's row for one acquisition (see the module docstring)."""
    blocks = acquisition_blocks(acq, BLOCK_FRAMES)
    positions, frames = detect_bubbles(model, blocks, progress=False)
    used = acq.frames < scored_frames(blocks)
    true_pos, true_frm = acq.positions[used], acq.frames[used]
    found, paired, _ = pair_greedy(true_pos, true_frm, positions, frames, MATCH)
    false = np.ones(len(positions), bool)
    false[paired.numpy()] = False
    det, frm = positions.double().numpy()[false], frames.numpy()[false]
    missed = np.ones(len(true_pos), bool)
    missed[found.numpy()] = False
    near_miss = near_missed_bubble(true_pos.double().numpy(), true_frm.numpy(), missed, det, frm)
    dist = offset_distances(acq, det, frm)
    dist = dist[np.isfinite(dist).any(axis=1)]  # a frame without bubbles: pure noise
    current = OFFSETS.index(0)
    others = np.nanmin(np.delete(dist, current, axis=1), axis=1, initial=np.inf)
    tp, tf = true_pos.double().numpy(), true_frm.numpy()
    near_count = np.zeros(len(tp), int)
    all_pos, all_frm = positions.double().numpy(), frames.numpy()
    for f in np.unique(tf):
        mine, theirs = np.flatnonzero(tf == f), all_pos[all_frm == f]
        if len(theirs):
            gaps = np.linalg.norm(tp[mine, None] - theirs[None], axis=2)
            near_count[mine] = (gaps < NEAR).sum(1)
    speed = track_speeds(tp, tf, acq.track_ids[used].numpy())
    edges = np.nanquantile(speed, [0, 0.25, 0.5, 0.75, 1])
    quartile = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, 3)
    return {
        "detections": len(positions),
        "false_positives": int(false.sum()),
        "near_fraction": float(np.mean(np.nanmin(dist, axis=1) < NEAR)) if len(dist) else 0.0,
        "noise_false_positives": int(false.sum()) - len(dist),
        "near_miss_fraction": float(near_miss.mean()) if len(near_miss) else 0.0,
        "median_distance": {
            str(o): float(np.nanmedian(dist[:, j])) if len(dist) else float("nan")
            for j, o in enumerate(OFFSETS)
        },
        "ghost_fraction": float(np.mean(others < 0.5 * dist[:, current])) if len(dist) else 0.0,
        "speed_quartiles": edges.tolist(),
        "near_detections_by_speed": [float(near_count[quartile == q].mean()) for q in range(4)],
    }


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_arguments(parser, [4, 38, 152, 607])
    parser.add_argument("--json", type=Path, default=RESULTS / "ulm_false_positives.json")
    args = parser.parse_args()
    model = held_out_network(args)
    header = " ".join(f"{o:+d}".rjust(5) for o in OFFSETS)
    print(
        f"{'conc':>5s} {'dets':>6s} {'FP':>6s} {'FP<0.5':>6s} {'missed':>6s} | median distance "
        f"{header} | "
        "ghosts | "
        "detections within 0.5 lambda by speed quartile"
    )
    rows = []
    for c, acq in held_out_simulations(args):
        row = {"concentration": c, **false_positive_row(model, acq)}
        rows.append(row)
        shares = " ".join(f"{v:5.2f}" for v in row["median_distance"].values())
        speeds = ", ".join(
            f"{lo:.2f}-{hi:.2f}: {n:.2f}"
            for lo, hi, n in zip(
                row["speed_quartiles"][:-1],
                row["speed_quartiles"][1:],
                row["near_detections_by_speed"],
                strict=True,
            )
        )
        print(
            f"{c:5g} {row['detections']:6d} {row['false_positives']:6d} "
            f"{row['near_fraction']:6.2f} {row['near_miss_fraction']:6.2f} |                 "
            f"{shares} | "
            f"{row['ghost_fraction']:6.2f} | {speeds}"
        )
    write_held_out_rows(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
