"""Retrospective undersampling keeps input spokes unchanged: a golden prefix or a seeded subset."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from blockrecon.physics import (
    Acquisition,
    kept_spokes,
    pipe_menon_dcf,
    simulate_radial,
    stack_of_stars,
    undersample_spokes,
)
from blockrecon.recon import cg_sense, grid_recon, psnr


@pytest.fixture(scope="module")
def acq() -> Acquisition:
    """16^3, 2 coils, 60 golden-means spokes of 32 samples, with the true maps and image."""
    full = simulate_radial((16, 16, 16), n_coils=2, n_spokes=60, snr_db=40.0, seed=1)
    return replace(full, dcf=pipe_menon_dcf(full.coord, full.image_shape, progress=False))


@pytest.mark.parametrize("factor", [1, 2, 2.5, 7, 59.5, 60])
def test_golden_keeps_the_first_ceil_spokes_over_r_unchanged(acq, factor):
    out = undersample_spokes(acq, factor)
    kept = math.ceil(60 / factor)
    assert out.sample_shape == (kept, 32) and out.kspace.shape == (2, kept, 32)
    assert torch.equal(out.kspace, acq.kspace[:, :kept])
    assert torch.equal(out.coord, acq.coord[:kept])
    assert out.dcf is None  # the full trajectory's weights do not fit the subset
    assert out.maps is acq.maps and out.image is acq.image
    assert out.noise_std == acq.noise_std and out.image_shape == acq.image_shape


def test_random_is_seeded_sorted_and_holds_the_input_rows(acq):
    index = kept_spokes(60, 4, "random", seed=3)
    assert len(index) == 15 and len(set(index.tolist())) == 15
    assert torch.equal(index, torch.sort(index).values)
    assert torch.equal(index, kept_spokes(60, 4, "random", seed=3))
    assert not torch.equal(index, kept_spokes(60, 4, "random", seed=4))
    assert not torch.equal(index, torch.arange(15))
    out = undersample_spokes(acq, 4, order="random", seed=3)
    assert torch.equal(out.kspace, acq.kspace[:, index])
    assert torch.equal(out.coord, acq.coord[index])


def test_the_spoke_axis_of_a_stack_of_stars_is_its_first():
    coord = stack_of_stars(12, 16, 4, image_size=8)
    kspace = torch.randn(3, *coord.shape[:-1], dtype=torch.complex64)
    acq = Acquisition(kspace=kspace, coord=coord, image_shape=(4, 8, 8))
    out = undersample_spokes(acq, 3, order="random", seed=0)
    index = kept_spokes(12, 3, "random", seed=0)
    assert out.coord.shape == (4, 4, 16, 3)
    assert torch.equal(out.kspace, kspace[:, index]) and torch.equal(out.coord, coord[index])


def test_reference_from_all_samples_beats_gridding_of_the_kept_ones(acq):
    out = undersample_spokes(acq, 4)
    reference = cg_sense(acq.kspace, acq.coord, acq.maps, n_iter=20, progress=False)
    gridded = grid_recon(out.kspace, out.coord, out.maps, progress=False)
    cg_of_kept = cg_sense(out.kspace, out.coord, out.maps, n_iter=20, progress=False)
    # measured: 28.7 dB against 17.9 dB (gridding) and 22.5 dB (CG-SENSE of the kept spokes)
    assert psnr(reference, acq.image) > psnr(gridded, acq.image) + 6
    assert psnr(reference, acq.image) > psnr(cg_of_kept, acq.image) + 3


@pytest.mark.parametrize(
    ("factor", "message"),
    [
        (0.5, "between 1 and the 60 spokes"),
        (0, "between 1 and the 60 spokes"),
        (61, "between 1 and the 60 spokes"),
        (float("nan"), "finite number"),
        (float("inf"), "finite number"),
        (True, "finite number"),
        ("2", "finite number"),
    ],
)
def test_bad_factor_is_named(acq, factor, message):
    with pytest.raises(ValueError, match=message):
        undersample_spokes(acq, factor)


def test_bad_order_seed_and_data_without_spokes_are_named(acq):
    with pytest.raises(ValueError, match="order must be one of"):
        undersample_spokes(acq, 2, order="linear")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        undersample_spokes(acq, 2, order="random", seed=-1)
    flat = Acquisition(
        kspace=acq.kspace.reshape(2, -1), coord=acq.coord.reshape(-1, 3), image_shape=(16,) * 3
    )
    with pytest.raises(ValueError, match="needs a spoke axis"):
        undersample_spokes(flat, 2)
