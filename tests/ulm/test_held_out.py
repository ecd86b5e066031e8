"""The held-out table of a model file: where the network beats conventional ULM, the
concentration its detection density points to, and the warning built from both."""

import math

import numpy as np
import pytest

from blockrecon.ulm.held_out import HeldOutTable, density_advice
from blockrecon.ulm.pretrained import load_pretrained_ulm

CONCENTRATIONS = (2.0, 4.0, 8.0, 16.0)
SHAPE = [8, 8, 8]


def _extra(network, conventional, precision=(0.5, 0.5, 0.6, 0.8), recall=(0.9, 0.8, 0.6, 0.6)):
    rows = []
    for i, c in enumerate(CONCENTRATIONS):
        net = {"precision": precision[i], "recall": recall[i], "jaccard": network[i]}
        rows.append({"method": "network", "concentration": c, **net})
        rows.append({"method": "conventional", "concentration": c, "jaccard": conventional[i]})
    return {"held_out": {"rows": rows[::-1]}, "settings": {"shape": SHAPE}}  # any row order


@pytest.mark.parametrize(
    "network, conventional, crossing",
    [
        # leads -0.05 at 4, +0.1 at 8: linear, the lead is 0 a third of the way
        ((0.5, 0.3, 0.4, 0.3), (0.9, 0.35, 0.3, 0.1), 4.0 + 4.0 / 3),
        # wins low, loses at 8 (-0.1), wins at 16 (+0.2): from a third of the way to 16
        ((0.5, 0.5, 0.2, 0.3), (0.4, 0.4, 0.3, 0.1), 8.0 + 8.0 / 3),
        ((0.5, 0.5, 0.5, 0.6), (0.4, 0.4, 0.5, 0.5), 8.0),  # a tie at 8 is no win
        ((0.9, 0.9, 0.9, 0.9), (0.5, 0.5, 0.5, 0.5), 2.0),
        ((0.1, 0.9, 0.9, 0.1), (0.5, 0.5, 0.5, 0.5), None),
    ],
)
def test_crossing_is_where_the_network_wins_from_then_on(network, conventional, crossing):
    found = HeldOutTable.from_extra(_extra(network, conventional)).crossing()
    assert found == (None if crossing is None else pytest.approx(crossing))


def test_concentration_for_inverts_the_detection_density():
    table = HeldOutTable.from_extra(_extra((0.1,) * 4, (0.5,) * 4))
    density = table.detections_per_voxel()
    expected = np.array(CONCENTRATIONS) * np.array([1.8, 1.6, 1.0, 0.75]) / math.prod(SHAPE)
    np.testing.assert_allclose(density, expected)
    for c, d in zip(CONCENTRATIONS, density, strict=True):
        assert table.concentration_for(d) == pytest.approx(c)
    assert table.concentration_for(0.0) == CONCENTRATIONS[0]  # clamped to the table
    assert table.concentration_for(1.0) == CONCENTRATIONS[-1]


def test_advice_warns_below_the_crossing_only():
    table = HeldOutTable.from_extra(_extra((0.5, 0.3, 0.4, 0.3), (0.9, 0.35, 0.3, 0.1)))
    per_frame = table.detections_per_voxel() * math.prod(SHAPE)  # detections per frame
    frames = 10
    low = density_advice(table, round(per_frame[1] * frames), frames, SHAPE)
    assert "about 4 bubbles/frame on a 8x8x8 field" in low
    assert "only from about 5.3 bubbles/frame" in low and "--method conventional" in low
    assert density_advice(table, round(per_frame[2] * frames), frames, SHAPE) is None
    # the same density on a field twice as large counts twice the detections
    larger = density_advice(table, round(2 * per_frame[1] * frames), frames, [16, 8, 8])
    assert "about 4 bubbles/frame on a 8x8x8 field" in larger


def test_no_table_no_advice():
    assert HeldOutTable.from_extra({"threshold": 0.5}) is None  # a model from 'ulm train'
    rows = _extra((0.5,) * 4, (0.9,) * 4)
    rows["held_out"]["rows"] = [r for r in rows["held_out"]["rows"] if r["method"] == "network"]
    assert HeldOutTable.from_extra(rows) is None
    assert density_advice(None, 100, 10, SHAPE) is None


@pytest.mark.parametrize("dims", [2, 3])
def test_shipped_networks_carry_their_held_out_table(dims):
    loaded = load_pretrained_ulm(dims)
    table = HeldOutTable.from_extra(loaded.extra)
    assert table is not None
    assert list(table.field_shape) == loaded.extra["settings"]["shape"]
    assert len(table.concentrations) == len(loaded.extra["settings"]["concentrations"])
