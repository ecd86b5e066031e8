"""Grid convention, disc targets, multi-scale Dice (and cross-entropy) known answers, decoding
of hand-built occupancy maps."""

import math

import pytest
import torch

from blockrecon.sparse import SparseTensor
from blockrecon.ulm.blocks import (
    OccupancyTargets,
    cell_centres,
    cell_indices,
    occupancy_targets,
)
from blockrecon.ulm.decode import decode_occupancy
from blockrecon.ulm.dice import dice_score, multiscale_dice_loss, site_bce
from blockrecon.ulm.nets.architecture import HEAD_BIAS
from blockrecon.ulm.nets.sparse import occupancy_keep

BIG = 50.0  # logit whose sigmoid is 1 to float64 rounding


def test_cell_centres_invert_cell_indices():
    pixel = (0.5, 0.25)
    pos = torch.tensor([[0.0, 0.0], [1.23, 2.2], [-0.2, 0.1]], dtype=torch.float64)
    for scale in (1, 8):
        cells = cell_indices(pos, pixel, scale)
        err = (cell_centres(cells, pixel, scale) - pos).abs() / torch.tensor(pixel)
        assert bool((err <= 0.5 / scale + 1e-12).all())
    # voxel 0 covers [-1/2, 1/2) pixels: 8 children 0..7
    assert cell_indices(torch.tensor([[-0.24, 0.24]]), (0.5, 0.5), 8).tolist() == [[0, 7]]


def _logits(shape, cells):
    logits = torch.full(shape, -BIG, dtype=torch.float64)
    for c in cells:
        logits[c] = BIG
    return logits


@pytest.mark.parametrize("sparse", [False, True])
def test_dice_known_answers(sparse):
    shape = (1, 2, 4, 4)
    target = occupancy_targets(torch.tensor([[0.1, 0.1], [1.0, 1.0]]), torch.tensor([0, 1]),
                               torch.tensor([0, 0]), (2, 4, 4), 1, (1.0, 1.0), scales=(1,))
    keys = target.keys[1]  # cells (0, 0, 0) and (0, 1, 1, 1)

    def score(cells):
        logits = _logits(shape, cells)
        if sparse:
            logits = SparseTensor.from_dense(logits.unsqueeze(1), threshold=0.0)
        return float(dice_score(logits, keys))

    assert score([(0, 0, 0, 0), (0, 1, 1, 1)]) == pytest.approx(1.0)
    assert score([(0, 0, 0, 0), (0, 1, 2, 2)]) == pytest.approx(3 / 5)  # (2*1+1)/(2+2+1)
    assert score([(0, 0, 3, 3)]) == pytest.approx(1 / 4)  # (0+1)/(1+2+1)
    assert score([]) == pytest.approx(1 / 3)  # (0+1)/(0+2+1)
    perfect = {1: _logits(shape, [(0, 0, 0, 0), (0, 1, 1, 1)])}
    assert float(multiscale_dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-12)


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
    target = occupancy_targets(pos, torch.tensor([0, 0]), torch.tensor([0, 0]), (1,) + (8,) * d,
                               1, pixel, scales=(8,), radius=0.125)
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
    assert torch.equal(decode_occupancy(logits, 0.5).positions,
                       decode_occupancy(logits, (0.5, 0.5)).positions)


def test_disc_targets_are_nested_and_decode_to_the_bubble():
    pixel, radius = (0.5, 0.5), 0.125
    pos = torch.tensor([[1.03, 2.41]], dtype=torch.float64)
    target = occupancy_targets(pos, torch.tensor([0]), torch.tensor([0]), (1, 8, 8), 1, pixel,
                               radius=radius)
    occupied = target.dense(8)[0, 0]
    cells = torch.stack(torch.meshgrid(*[torch.arange(n) for n in occupied.shape],
                                       indexing="ij"), -1).reshape(-1, 2)
    near = (cell_centres(cells, pixel, 8) - pos).norm(dim=1) <= radius
    near |= (cells == cell_indices(pos, pixel, 8)).all(1)
    assert torch.equal(occupied.reshape(-1) > 0, near)
    assert target.keys[8].numel() >= 9  # a disc, not a single cell, on the 8x grid
    for scale in (1, 2, 4):  # coarser: exactly the cells containing an occupied 8x cell
        pooled = torch.nn.functional.max_pool2d(target.dense(8)[0], 8 // scale)
        assert torch.equal(target.dense(scale)[0], pooled), scale
    logits = torch.where(target.dense(8) > 0, BIG, -BIG)
    found = decode_occupancy(logits, pixel, scale=8)
    assert found.positions.shape == (1, 2)
    assert float((found.positions.double() - pos).norm()) < 0.5 * 0.5 / 8  # half a fine cell
    with pytest.raises(ValueError, match="radius"):
        occupancy_targets(pos, torch.tensor([0]), torch.tensor([0]), (1, 8, 8), 1, pixel,
                          radius=-1.0)


@pytest.mark.parametrize("sparse", [False, True])
def test_site_bce_is_the_cross_entropy_of_the_held_sites(sparse):
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    target = occupancy_targets(torch.tensor([[0.1, 0.1], [1.0, 1.0]]), torch.tensor([0, 1]),
                               torch.tensor([0, 0]), (2, 4, 4), 1, (1.0, 1.0), scales=(1,))
    labels = target.dense(1).double()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    held = SparseTensor.from_dense(logits.unsqueeze(1), threshold=0.0) if sparse else logits
    torch.testing.assert_close(site_bce(held, target.keys[1]), expected)
    loss = multiscale_dice_loss({1: held}, target, bce_weight=2.0, class_balanced=False)
    torch.testing.assert_close(loss, 1 - dice_score(held, target.keys[1]) + 2 * expected)
    with pytest.raises(ValueError, match="bce_weight"):
        multiscale_dice_loss({1: held}, target, bce_weight=-1.0)


def test_class_balanced_bce_is_the_mean_of_the_two_class_means():
    # one 3D+t item, 4 held sites: the occupied one (logit 2) and three empty ones
    coords = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 1, 1, 1, 1]])
    logits = SparseTensor(coords, torch.tensor([[2.0], [-1.0], [0.0], [1.0]],
                                               dtype=torch.float64), (2, 2, 2, 2))
    target = logits.keys()[:1]
    softplus = [math.log1p(math.exp(v)) for v in (-2.0, -1.0, 0.0, 1.0)]  # -log(1 - sigmoid)
    positive = softplus[0]  # -log(sigmoid(2)) = softplus(-2)
    negative = (softplus[1] + softplus[2] + softplus[3]) / 3  # -log(1 - sigmoid(v))
    assert float(site_bce(logits, target, class_balanced=True)) == pytest.approx(
        (positive + negative) / 2, rel=1e-12)
    assert float(site_bce(logits, target)) == pytest.approx(
        (positive + 3 * negative) / 4, rel=1e-12)
    # no occupied site: the mean over the empty ones
    assert float(site_bce(logits, target[:0], class_balanced=True)) == pytest.approx(
        sum(math.log1p(math.exp(v)) for v in (2.0, -1.0, 0.0, 1.0)) / 4, rel=1e-12)


def test_balanced_loss_keeps_an_uninformative_coarse_head_above_the_pruning_threshold():
    """The 3D failure: a scale-1 head whose features do not yet separate bubbles from the other
    bright sites can only fit a constant. With 5% occupied sites plain cross-entropy (plus
    Dice) drives that constant below 0.5, so pruning drops every bubble; the class-balanced
    loss settles at or above 0.5 and pruning keeps them all."""
    torch.manual_seed(0)
    grid = (16, 4, 4, 4)  # (T, D, H, W): every site of one 3D+t block
    axes = torch.meshgrid(*[torch.arange(n) for n in grid], indexing="ij")
    coords = torch.stack([torch.zeros_like(axes[0])] + [a for a in axes], -1).reshape(-1, 5)
    n_sites = coords.shape[0]
    keys = torch.randperm(n_sites)[: n_sites // 20].sort().values
    target = OccupancyTargets(grid, 1, {1: keys})
    kept = {}
    for balanced in (False, True):
        bias = torch.tensor(HEAD_BIAS, requires_grad=True)
        optimizer = torch.optim.Adam([bias], lr=0.05)
        for _ in range(400):
            head = SparseTensor(coords, bias.expand(n_sites, 1), grid)
            loss = multiscale_dice_loss({1: head}, target, bce_weight=1.0,
                                        class_balanced=balanced)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        head = SparseTensor(coords, bias.detach().expand(n_sites, 1), grid)
        kept[balanced] = torch.isin(keys, head.keys()[occupancy_keep(head)]).float().mean()
    assert float(kept[False]) < 0.05  # at most the one site kept per item
    assert float(kept[True]) == 1.0
