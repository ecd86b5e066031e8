"""Density and velocity maps built from tracks."""

import numpy as np
import pytest
import torch

from blockrecon.ulm import track_maps


def _table(points, frames):
    return torch.tensor(points, dtype=torch.float32), torch.tensor(frames)


def test_maps_draw_a_continuous_line_with_the_right_velocity():
    frame_rate, pixel, up = 500.0, 0.5, 4
    frames = np.arange(0, 30, 3)  # detections every 3rd frame, 0.6 lambda apart
    points = np.column_stack([np.full(len(frames), 2.0), 0.5 + 0.2 * frames])
    pos, frm = _table(points, frames)
    maps = track_maps(
        pos,
        frm,
        torch.zeros(len(frames), dtype=torch.int64),
        (10, 16),
        pixel,
        frame_rate,
        upsampling=up,
    )
    assert maps.density.shape == (40, 64) and maps.pixel_size == (0.125, 0.125)
    row = int((2.0 + pixel / 2) / maps.pixel_size[0])
    first = int((points[0, 1] + pixel / 2) / maps.pixel_size[1])
    last = int((points[-1, 1] + pixel / 2) / maps.pixel_size[1])
    assert torch.all(maps.density[row, first : last + 1] > 0)  # no holes between detections
    assert float(maps.density.sum() - maps.density[row].sum()) == 0.0
    lit = maps.density > 0
    assert torch.allclose(maps.velocity[1][lit], torch.tensor(0.2 * frame_rate))
    assert torch.allclose(maps.velocity[0][lit], torch.tensor(0.0))
    assert torch.allclose(maps.speed[lit], torch.tensor(100.0))


def test_maps_ignore_untracked_points():
    pos, frm = _table([[1.0, 1.0], [1.0, 1.1], [3.0, 3.0]], [0, 1, 1])
    maps = track_maps(pos, frm, torch.tensor([0, 0, -1]), (8, 8), 0.5, 100.0)
    assert float(maps.density.sum()) > 0
    assert float(maps.density[int(3.25 / 0.0625), int(3.25 / 0.0625)]) == 0.0


@pytest.mark.parametrize(
    "ids, kwargs, message",
    [
        (torch.tensor([0, 0, 1]), {}, "same frame"),
        ([0, 1, 2], {}, "track_ids must be a torch.Tensor"),
        (torch.tensor([0, 1, 2]), {"shape": (0, 8)}, "shape"),
        (torch.tensor([0, 1, 2]), {"upsampling": 2.5}, "upsampling"),
    ],
)
def test_bad_map_arguments_are_named(ids, kwargs, message):
    pos, frm = _table([[1.0, 1.0], [1.0, 1.1], [3.0, 3.0]], [1, 1, 2])
    args = {"shape": (8, 8), "upsampling": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        track_maps(pos, frm, ids, args["shape"], 0.5, 100.0, upsampling=args["upsampling"])


def test_integral_float_upsampling_is_accepted():
    pos, frm = _table([[1.0, 1.0], [1.0, 1.1]], [0, 1])
    maps = track_maps(pos, frm, torch.tensor([0, 0]), (8, 8), 0.5, 100.0, upsampling=8.0)
    assert maps.density.shape == (64, 64)
