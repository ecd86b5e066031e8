"""Grid convention, disc occupancy targets and input scaling of ULM blocks."""

import pytest
import torch

from blockrecon.ulm.blocks import (
    cell_centres,
    cell_indices,
    iq_channels,
    occupancy_targets,
)
from blockrecon.ulm.decode import decode_occupancy
from blockrecon.ulm.learned_mask import InputSparsifier

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


def test_disc_targets_are_nested_and_decode_to_the_bubble():
    pixel, radius = (0.5, 0.5), 0.125
    pos = torch.tensor([[1.03, 2.41]], dtype=torch.float64)
    target = occupancy_targets(
        pos, torch.tensor([0]), torch.tensor([0]), (1, 8, 8), 1, pixel, radius=radius
    )
    occupied = target.dense(8)[0, 0]
    cells = torch.stack(
        torch.meshgrid(*[torch.arange(n) for n in occupied.shape], indexing="ij"), -1
    ).reshape(-1, 2)
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
        occupancy_targets(
            pos, torch.tensor([0]), torch.tensor([0]), (1, 8, 8), 1, pixel, radius=-1.0
        )


def test_selected_targets_are_the_items_dense_maps_in_the_given_order():
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(40, 2, generator=gen, dtype=torch.float64) * 3.5
    frames, items = (
        torch.randint(0, 2, (40,), generator=gen),
        torch.randint(0, 5, (40,), generator=gen),
    )
    target = occupancy_targets(pos, frames, items, (2, 4, 4), 5, (0.5, 0.5), radius=0.2)
    order = [3, 0, 3, 4]  # repeats and any order, as random batches draw them
    chosen = target.select(order)
    assert chosen.batch_size == len(order)
    for scale in (1, 2, 4, 8):
        assert torch.equal(chosen.dense(scale), target.dense(scale)[order])
        keys = chosen.keys[scale]
        assert bool((keys[1:] > keys[:-1]).all())  # still sorted and unique


@pytest.mark.parametrize("d", [2, 3])
def test_dilated_keys_are_the_targets_grown_per_frame(d):
    """The cells within ``margin`` of an occupied one, in the same frame and block, equal the
    occupancy maps max-pooled over a (2 margin + 1)^d window (clipped at the grid's edges)."""
    gen = torch.Generator().manual_seed(d)
    pos = torch.rand(12, d, generator=gen, dtype=torch.float64) * 1.75  # 4 voxels of 0.5
    pos[0] = 0.0  # a bubble in the corner: the neighbourhood is clipped
    frames = torch.randint(0, 3, (12,), generator=gen)
    items = torch.randint(0, 2, (12,), generator=gen)
    target = occupancy_targets(pos, frames, items, (3,) + (4,) * d, 2, (0.5,) * d, radius=0.1)
    pool = torch.nn.functional.max_pool3d if d == 3 else torch.nn.functional.max_pool2d
    for margin in (0, 1, 2):
        grown = target.dilated(margin, scales=(1, 2, 4))
        assert sorted(grown) == [1, 2, 4]
        for scale, keys in grown.items():
            occupied = target.dense(scale)
            frames_first = occupied.reshape(-1, 1, *occupied.shape[2:])
            window = 2 * margin + 1
            expected = pool(frames_first, window, stride=1, padding=margin).reshape(-1)
            assert torch.equal(keys, expected.nonzero().squeeze(1))
    with pytest.raises(ValueError, match="margin"):
        target.dilated(-1)


def _bubble_and_empty_blocks(spatial: tuple[int, ...]) -> torch.Tensor:
    """Complex (2, 16, *spatial): noise (std 0.01) everywhere, plus one unit bubble voxel in
    every frame of block 0; block 1 is noise only."""
    iq = _complex_noise((2, 16, *spatial), std=0.01)
    iq[(0, slice(None)) + (1,) * len(spatial)] = 1.0
    return iq


@pytest.mark.parametrize("spatial", [(16, 16), (8, 8, 8)])
def test_a_block_without_bubbles_keeps_the_noise_level_of_the_acquisition(spatial):
    iq = _bubble_and_empty_blocks(spatial)
    channels = iq_channels(iq)
    noise = channels[1].square().sum(0).sqrt()
    assert float(noise.max()) < 0.2  # its noise is not scaled up to bubble level
    kept = InputSparsifier().keep(channels).flatten(1).float().mean(1)
    assert float(kept[1]) <= float(kept[0])
    unfloored = iq_channels(iq, scale_floor=0.0, noise_floor=0.0)[1].square().sum(0).sqrt()
    assert float(unfloored.max()) > 0.9  # what the floor prevents


@pytest.mark.parametrize(
    "floors, name",
    [({"scale_floor": -0.1}, "scale_floor"), ({"scale_floor": 1.5}, "scale_floor")]
    + [({"noise_floor": v}, "noise_floor") for v in (-1.0, float("inf"), float("nan"))],
)
def test_iq_channels_rejects_bad_floors(floors, name):
    with pytest.raises(ValueError, match=name):
        iq_channels(torch.zeros(1, 16, 4, 4, dtype=torch.complex64), **floors)


def _complex_noise(shape: tuple[int, ...], std: float, seed: int = 0) -> torch.Tensor:
    """Complex Gaussian noise, each of the real and imaginary parts of std ``std``."""
    generator = torch.Generator().manual_seed(seed)
    return std * torch.complex(
        torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    )


@pytest.mark.parametrize("spatial", [(16, 16), (8, 8, 8)])
def test_an_acquisition_of_noise_alone_is_not_scaled_to_bubble_level(spatial):
    iq = _complex_noise((2, 16, *spatial), std=0.01)
    kept = InputSparsifier().keep(iq_channels(iq)).float().mean()
    assert float(kept) < 0.02  # about 1 % by construction of the noise floor
    unfloored = iq_channels(iq, scale_floor=0.0, noise_floor=0.0)
    assert float(InputSparsifier().keep(unfloored).float().mean()) > 0.5
