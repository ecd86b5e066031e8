"""The patch plan: cores tile the volume once, inputs are equal and stride-aligned."""

from __future__ import annotations

import pytest
import torch

from blockrecon.blockwise import plan_patches


@pytest.mark.parametrize(
    "shape,patch,stride",
    [((10, 7, 5), (4, 4, 5), 1), ((9, 12, 6), (4, 8, 2), 2), ((5, 5), (5, 2), 1)],
)
def test_plan_covers_volume_once_with_equal_patches(shape, patch, stride):
    plan = plan_patches(shape, patch, 3, stride)
    count = torch.zeros(shape, dtype=torch.int64)
    for p in plan:
        count[p.output] += 1
        assert tuple(s.stop - s.start for s in p.input) == plan.input_size
        assert all(s.start % stride == 0 for s in p.input)
        for keep, out in zip(p.keep, p.output, strict=True):
            assert keep.stop - keep.start == out.stop - out.start
    assert bool((count == 1).all())
    assert len(plan) == torch.tensor(plan.grid).prod()
    assert "keep (in core)" in repr(plan)


def test_plan_refuses_a_patch_of_other_dimensions():
    with pytest.raises(ValueError, match="dimensions"):
        plan_patches((8, 8), (4, 4, 4), 1)
