"""Keep-masks on IQ blocks, what they retain, and the SparseTensor they make."""

import numpy as np
import pytest
import torch

from blockrecon.ulm import bubble_retention, threshold_mask, to_sparse, topk_mask


def _block():
    rng = np.random.default_rng(0)
    iq = (rng.standard_normal((3, 8, 8)) + 1j * rng.standard_normal((3, 8, 8))) * 0.1
    iq[0, 2, 3] = 2.0  # block maximum, power 4
    iq[1, 5, 5] = 1.5j  # power 2.25
    iq[2, 1, 1] = 0.5  # power 0.25
    return torch.from_numpy(iq.astype(np.complex64))


def test_threshold_mask_block_and_frame_normalization():
    iq = _block()
    power = iq.abs() ** 2
    block = threshold_mask(iq, 0.25)
    assert torch.equal(block, power > 0.25 * 4.0)
    assert block[0, 2, 3] and block[1, 5, 5] and not block[2, 1, 1]
    frame = threshold_mask(iq, 0.5, normalization="frame")
    peaks = power.amax(dim=(1, 2), keepdim=True)
    assert torch.equal(frame, power > 0.5 * peaks)
    assert frame[2, 1, 1]


def test_topk_per_frame_and_per_tile():
    iq = _block()
    power = (iq.abs() ** 2).numpy()
    mask = topk_mask(iq, 5).numpy()
    for f in range(3):
        assert mask[f].sum() == 5
        assert power[f][mask[f]].min() >= power[f][~mask[f]].max()
    tiled = topk_mask(iq, 2, block_shape=(4, 4)).numpy()
    for f in range(3):
        for r in (0, 4):
            for c in (0, 4):
                tile, kept = power[f, r : r + 4, c : c + 4], tiled[f, r : r + 4, c : c + 4]
                assert kept.sum() == 2 and tile[kept].min() >= tile[~kept].max()


def test_retention_counts_bubbles_whose_voxel_survives():
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, 2, 3] = True
    mask[1, 6, 6] = True
    pixel = 0.5
    positions = torch.tensor(
        [
            [1.05, 1.45],  # frame 0, nearest voxel (2, 3): kept
            [3.0, 3.0],  # frame 0, voxel (6, 6) kept only in frame 1
            [3.0, 3.0],  # frame 1: kept
            [3.0, 3.45],
        ]
    )  # frame 1, nearest voxel (6, 7); (6, 6) is 0.45 away
    frames = torch.tensor([0, 0, 1, 1])
    nearest = bubble_retention(mask, positions, frames, pixel)
    assert nearest.bubbles_kept == pytest.approx(2 / 4)
    assert nearest.voxels_kept == pytest.approx(2 / 128)
    within = bubble_retention(mask, positions, frames, pixel, radius=0.5)
    assert within.bubbles_kept == pytest.approx(3 / 4)


def test_to_sparse_holds_exactly_the_kept_voxels():
    iq = _block()
    mask = threshold_mask(iq, 0.05)
    sparse = to_sparse(iq, mask)
    assert sparse.num_sites == int(mask.sum()) and sparse.num_channels == 2
    dense = sparse.to_dense()[0]
    assert torch.equal(torch.complex(dense[0], dense[1]), torch.where(mask, iq, 0))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda iq: threshold_mask(iq, 1.5), "threshold"),
        (lambda iq: threshold_mask(iq, 0.2, normalization="global"), "normalization"),
        (lambda iq: topk_mask(iq, 0), "k must be"),
        (lambda iq: topk_mask(iq, 2, block_shape=(3, 3)), "block_shape"),
        (lambda iq: topk_mask(iq, 2, block_shape=(0, 8)), "block_shape"),
        (lambda iq: to_sparse(iq, torch.ones(2, 2, dtype=torch.bool)), "mask"),
        (lambda iq: threshold_mask(iq.abs(), 0.2), "complex"),
        (
            lambda iq: bubble_retention(iq.abs() > 0, torch.zeros(1, 2), torch.tensor([7]), 0.5),
            "exceed",
        ),
    ],
)
def test_bad_sparsify_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(_block())
