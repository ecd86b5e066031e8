"""select_sites: threshold (absolute or relative to each group's maximum) and top-k per group."""

import pytest
import torch

from blockrecon.sparse.select import select_sites, site_energy


def test_relative_threshold_per_group_and_zero_groups_keep_nothing():
    energy = torch.tensor([[1.0, 4.0, 2.0], [0.0, 0.0, 0.0]])
    keep = select_sites(energy, threshold=0.4, relative=True)
    assert keep.tolist() == [[False, True, True], [False, False, False]]
    whole = select_sites(energy, threshold=0.4, relative=True, group_ndim=2)
    assert torch.equal(whole, keep)
    assert select_sites(energy, threshold=1.5).tolist() == [[False, True, True], [False] * 3]


def test_topk_per_group_breaks_ties_towards_the_lowest_index():
    energy = torch.tensor([[[1.0, 3.0], [3.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]])
    keep = select_sites(energy, topk=2)
    assert keep.tolist() == [[[False, True], [True, False]], [[True, True], [False, False]]]
    per_row = select_sites(energy, topk=1, group_ndim=1)
    assert per_row.sum().item() == 4 and bool(per_row[1, :, 0].all())


def test_site_energy_sums_squared_channels():
    x = torch.tensor([[[3.0], [4.0]]])
    assert site_energy(x).tolist() == [[25.0]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one"),
        ({"threshold": 0.1, "topk": 1}, "exactly one"),
        ({"topk": 5}, "topk must be an int in \\[0, 4\\]"),
        ({"topk": 1.0}, "topk"),
    ],
)
def test_bad_selection_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_sites(torch.ones(2, 2, 2), **kwargs)
