"""Decoding of hand-built occupancy maps into bubble positions."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from blockrecon.sparse import SparseTensor
from blockrecon.ulm.blocks import cell_centres, occupancy_targets
from blockrecon.ulm.decode import (
    Detections,
    _ball,
    _CellIndex,
    _components,
    _depth,
    _nearest_lowest,
    _peaks,
    decode_occupancy,
    merge_close,
)

BIG = 50.0  # logit whose sigmoid is 1 to float64 rounding


def test_decode_recovers_hand_built_bubbles():
    pixel = (0.5, 0.5)
    shape = (2, 3, 32, 32)  # 2 blocks, 3 frames, 4x4 input grid at scale 8
    logits = torch.full(shape, -BIG)
    logits[0, 1, 4:6, 10:12] = BIG  # 2x2 blob: centre at cell (4.5, 10.5)
    logits[0, 1, 20, 3] = BIG  # single cell
    logits[1, 2, 30, 30] = 0.0  # occupancy 0.5: not above the threshold
    logits[1, 0, 7:10, 7] = torch.tensor([0.0, 3.0, 0.0]) + 1e-3  # 3 cells, symmetric weights
    found = decode_occupancy(logits, pixel, scale=8, first_frames=torch.tensor([0, 100]))
    expected = cell_centres(torch.tensor([[4.5, 10.5], [20.0, 3.0], [8.0, 7.0]]), pixel, 8)
    assert found.items.tolist() == [0, 0, 1]
    assert found.frames.tolist() == [1, 1, 100]
    order = torch.argsort(found.positions[:2, 0])
    got = torch.cat([found.positions[:2][order], found.positions[2:]])
    torch.testing.assert_close(got, expected.float(), rtol=0, atol=1e-5)
    sparse = SparseTensor.from_dense(logits.unsqueeze(1), threshold=-1.0)  # every cell
    again = decode_occupancy(sparse, pixel, scale=8, first_frames=torch.tensor([0, 100]))
    torch.testing.assert_close(again.positions, found.positions)
    assert again.frames.tolist() == found.frames.tolist()


@pytest.mark.parametrize("pixel", [(0.5, 0.5), (0.5, 0.5, 0.5)])
def test_touching_discs_split_into_their_bubbles(pixel):
    """Two bubbles 0.22 lambda apart: their lambda/8 target discs merge into one component,
    which the peak split decodes as two bubbles, each within a fine cell of the truth."""
    d = len(pixel)
    pos = torch.tensor([[1.0] * d, [1.22] + [1.03] * (d - 1)], dtype=torch.float64)
    target = occupancy_targets(
        pos,
        torch.tensor([0, 0]),
        torch.tensor([0, 0]),
        (1,) + (8,) * d,
        1,
        pixel,
        scales=(8,),
        radius=0.125,
    )
    logits = torch.where(target.dense(8) > 0, BIG, -BIG)
    merged = decode_occupancy(logits, pixel, scale=8, split_radius=None)
    assert merged.positions.shape == (1, d)  # one component
    found = decode_occupancy(logits, pixel, scale=8)
    assert found.positions.shape == (2, d)
    got = found.positions.double()[torch.argsort(found.positions[:, 0])]
    assert float((got - pos).norm(dim=1).max()) < 0.5 / 8  # within one fine cell


def test_decode_bad_input():
    with pytest.raises(ValueError, match="threshold"):
        decode_occupancy(torch.zeros(1, 1, 8, 8), (1.0, 1.0), threshold=1.5)
    with pytest.raises(ValueError, match="pixel_size"):
        decode_occupancy(torch.zeros(1, 1, 8, 8), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="logits"):
        decode_occupancy(torch.zeros(8, 8), (1.0, 1.0))
    with pytest.raises(ValueError, match="split_radius"):
        decode_occupancy(torch.zeros(1, 1, 8, 8), (1.0, 1.0), split_radius=0.0)
    with pytest.raises(ValueError, match="scale"):
        decode_occupancy(torch.zeros(1, 1, 8, 8), (1.0, 1.0), scale=0)
    with pytest.raises(ValueError, match="first_frames"):
        decode_occupancy(torch.zeros(2, 1, 8, 8), (1.0, 1.0), first_frames=torch.tensor([0]))


def test_scalar_pixel_size_is_every_axis():
    logits = torch.full((1, 1, 8, 8), -9.0)
    logits[0, 0, 3, 5] = 9.0
    assert torch.equal(
        decode_occupancy(logits, 0.5).positions, decode_occupancy(logits, (0.5, 0.5)).positions
    )


@pytest.mark.parametrize("shape", [(40, 40), (12, 14, 16)])
@pytest.mark.parametrize("fill", [0.03, 0.1, 0.2])
def test_components_of_the_cells_are_those_of_scipy_label(shape, fill):
    """Connected components found from the cells alone equal scipy's labelling of the dense
    grid (full connectivity), numbering included."""
    rng = np.random.default_rng(int(fill * 100) + len(shape))
    grid = rng.random(shape) < fill
    labels, count = ndimage.label(grid, ndimage.generate_binary_structure(len(shape), len(shape)))
    cells = np.argwhere(grid)
    order = rng.permutation(len(cells))  # any cell order
    found = _components(cells[order])
    assert count > 1
    np.testing.assert_array_equal(found, labels[tuple(cells[order].T)] - 1)


def _dense_peaks(box: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Reference peaks (k, D) of one component's occupancy ``box`` (zero outside it), by scipy
    on the dense box: local maxima over the ball of the distance transform times the
    occupancy, plateaus at their centre of mass, in label order."""
    depth = ndimage.distance_transform_edt(np.pad(box > 0, 1), sampling=1.0 / radius)
    score = depth[(slice(1, -1),) * box.ndim] * box
    top = (score == ndimage.maximum_filter(score, footprint=_ball(radius), mode="constant")) & (
        box > 0
    )
    plateaus, count = ndimage.label(top, ndimage.generate_binary_structure(box.ndim, box.ndim))
    centres = ndimage.center_of_mass(top, plateaus, np.arange(1, count + 1))
    return np.asarray(centres, dtype=np.float64).reshape(count, box.ndim)


@pytest.mark.parametrize("radius", [(2.0, 2.0, 2.0), (1.5, 2.5, 2.0)])
def test_peaks_from_the_cells_are_those_of_the_dense_distance_transform(radius):
    """Depth and peaks computed from the cells alone equal scipy's dense distance transform and
    maximum filter on each component's own box, for random occupancy on random touching
    discs (several components, some with many peaks)."""
    radius = np.asarray(radius)
    rng = np.random.default_rng(0)
    grid = np.zeros((24, 28, 20))
    for centre in rng.integers(0, grid.shape, size=(25, 3)):
        offsets = np.argwhere(_ball(radius)) - np.ceil(radius).astype(int)
        cells = np.clip(centre + offsets, 0, np.array(grid.shape) - 1)
        grid[tuple(cells.T)] = np.maximum(grid[tuple(cells.T)], rng.random(len(cells)))
    cells = np.argwhere(grid > 0)
    prob = grid[tuple(cells.T)]
    group = _components(cells)
    index = _CellIndex(cells, int(np.ceil(radius).max()))
    whole = ndimage.distance_transform_edt(np.pad(grid > 0, 1), sampling=1.0 / radius)
    np.testing.assert_array_equal(_depth(index, radius), whole[tuple((cells + 1).T)])
    centres, component = _peaks(group, index, prob, radius)
    assert group.max() >= 2 and np.bincount(component).max() >= 3
    for k in range(group.max() + 1):
        members = cells[group == k]
        low = members.min(0)
        box = np.zeros(tuple(members.max(0) - low + 1))
        box[tuple((members - low).T)] = prob[group == k]
        np.testing.assert_allclose(centres[component == k], _dense_peaks(box, radius) + low)


@pytest.mark.parametrize("sparse", [False, True])
def test_smoothing_joins_the_fragments_of_one_bubble_not_distant_bubbles(sparse):
    """One bubble painted as two fragments 3 fine cells (0.19 lambda) apart decodes as two
    bubbles; smoothed with sigma = 1.5 cells, as one at their midpoint, while a bubble 20 cells
    away stays on its own."""
    pixel = (0.5, 0.5, 0.5)
    logits = torch.full((1, 1, 64, 64, 64), -BIG)
    fragment = float(np.log(0.6 / 0.4))  # occupancy 0.6
    logits[0, 0, 20, 20, 20] = logits[0, 0, 20, 20, 23] = fragment
    logits[0, 0, 40, 40, 40] = 2.0
    if sparse:
        logits = SparseTensor.from_dense(logits.unsqueeze(1), threshold=-BIG / 2)
    plain = decode_occupancy(logits, pixel, scale=8, threshold=0.5)
    assert plain.positions.shape == (3, 3)
    smooth = decode_occupancy(logits, pixel, scale=8, threshold=1e-3, smoothing=1.5 / 16)
    expected = cell_centres(torch.tensor([[20.0, 20.0, 21.5], [40.0, 40.0, 40.0]]), pixel, 8)
    got = smooth.positions[torch.argsort(smooth.positions[:, 0])]
    torch.testing.assert_close(got, expected.float(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="smoothing"):
        decode_occupancy(logits, pixel, scale=8, smoothing=0.0)


def _detections(rows):
    """Detections of rows (item, frame, x, y, z, mass), in that order."""
    rows = torch.tensor(rows, dtype=torch.float64)
    return Detections(
        rows[:, 2:5].float(), rows[:, 1].long(), rows[:, 0].long(), rows[:, 5].contiguous()
    )


def test_merge_close_joins_detections_of_one_frame_heaviest_first():
    """Within (item 0, frame 0): B (mass 2) takes A and C, both 0.35 lambda away, though they
    are 0.7 apart (heaviest first, not a chain from A); D is 1.5 away and stays. The same
    positions in another frame or block are not merged with them."""
    found = _detections(
        [
            [0, 0, 0.0, 0.0, 0.0, 1.0],  # A
            [0, 0, 0.35, 0.0, 0.0, 2.0],  # B
            [0, 0, 0.7, 0.0, 0.0, 1.0],  # C
            [0, 0, 2.0, 0.0, 0.0, 1.0],  # D
            [0, 1, 0.3, 0.0, 0.0, 1.0],  # another frame
            [1, 0, 0.1, 0.0, 0.0, 5.0],  # another block
        ]
    )
    merged = merge_close(found, 0.4)
    assert merged.items.tolist() == [0, 0, 0, 1] and merged.frames.tolist() == [0, 0, 1, 0]
    torch.testing.assert_close(merged.positions[:, 0], torch.tensor([0.35, 2.0, 0.3, 0.1]))
    torch.testing.assert_close(
        merged.masses, torch.tensor([4.0, 1.0, 1.0, 5.0], dtype=torch.float64)
    )
    lopsided = merge_close(_detections([[0, 0, 0.0, 0, 0, 3.0], [0, 0, 0.2, 0, 0, 1.0]]), 0.4)
    torch.testing.assert_close(lopsided.positions[:, 0], torch.tensor([0.05]))  # mass-weighted
    assert len(merge_close(found, 0.1).frames) == len(found.frames)
    assert merge_close(found, 0.0) is found  # radius 0: no merging
    with pytest.raises(ValueError, match="merge radius"):
        merge_close(found, -0.1)


def test_decoded_masses_are_the_summed_occupancy_of_each_bubble():
    logits = torch.full((1, 1, 32, 32), -BIG)
    logits[0, 0, 4:6, 10:12] = BIG  # 4 cells of occupancy 1
    logits[0, 0, 20, 3] = 0.0  # one cell of occupancy 0.5
    found = decode_occupancy(logits, (0.5, 0.5), scale=8, threshold=0.4)
    assert sorted(found.masses.tolist()) == pytest.approx([0.5, 4.0])


def test_a_cell_equidistant_from_peaks_goes_to_the_first():
    tree = cKDTree(np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, -1.0]]))
    points = np.array([[1.0, 0.0], [0.1, 0.0], [1.9, 0.0]])  # all four tie; then nearest
    np.testing.assert_array_equal(_nearest_lowest(tree, points), [0, 1, 0])
