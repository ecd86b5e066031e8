"""Multi-scale Dice and cross-entropy: known answers, class balance, the pruning threshold."""

import math

import pytest
import torch

from blockrecon.sparse import SparseTensor
from blockrecon.ulm.blocks import (
    OccupancyTargets,
    occupancy_targets,
)
from blockrecon.ulm.dice import dice_score, multiscale_dice_loss, site_bce
from blockrecon.ulm.nets.architecture import HEAD_BIAS
from blockrecon.ulm.nets.sparse import occupancy_keep

BIG = 50.0  # logit whose sigmoid is 1 to float64 rounding


def _logits(shape, cells):
    logits = torch.full(shape, -BIG, dtype=torch.float64)
    for c in cells:
        logits[c] = BIG
    return logits


@pytest.mark.parametrize("sparse", [False, True])
def test_dice_known_answers(sparse):
    shape = (1, 2, 4, 4)
    target = occupancy_targets(
        torch.tensor([[0.1, 0.1], [1.0, 1.0]]),
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        (2, 4, 4),
        1,
        (1.0, 1.0),
        scales=(1,),
    )
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


@pytest.mark.parametrize("sparse", [False, True])
def test_site_bce_is_the_cross_entropy_of_the_held_sites(sparse):
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    target = occupancy_targets(
        torch.tensor([[0.1, 0.1], [1.0, 1.0]]),
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        (2, 4, 4),
        1,
        (1.0, 1.0),
        scales=(1,),
    )
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
    logits = SparseTensor(
        coords, torch.tensor([[2.0], [-1.0], [0.0], [1.0]], dtype=torch.float64), (2, 2, 2, 2)
    )
    target = logits.keys()[:1]
    softplus = [math.log1p(math.exp(v)) for v in (-2.0, -1.0, 0.0, 1.0)]  # -log(1 - sigmoid)
    positive = softplus[0]  # -log(sigmoid(2)) = softplus(-2)
    negative = (softplus[1] + softplus[2] + softplus[3]) / 3  # -log(1 - sigmoid(v))
    assert float(site_bce(logits, target, class_balanced=True)) == pytest.approx(
        (positive + negative) / 2, rel=1e-12
    )
    assert float(site_bce(logits, target)) == pytest.approx(
        (positive + 3 * negative) / 4, rel=1e-12
    )
    # no occupied site: the mean over the empty ones
    assert float(site_bce(logits, target[:0], class_balanced=True)) == pytest.approx(
        sum(math.log1p(math.exp(v)) for v in (2.0, -1.0, 0.0, 1.0)) / 4, rel=1e-12
    )


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
            loss = multiscale_dice_loss({1: head}, target, bce_weight=1.0, class_balanced=balanced)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        head = SparseTensor(coords, bias.detach().expand(n_sites, 1), grid)
        kept[balanced] = torch.isin(keys, head.keys()[occupancy_keep(head)]).float().mean()
    assert float(kept[False]) < 0.05  # at most the one site kept per item
    assert float(kept[True]) == 1.0
