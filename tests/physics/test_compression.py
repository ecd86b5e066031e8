"""Coil compression: orthonormal matrix, unchanged SENSE solution with all coils, energy, image
quality with half the coils, bad input."""

import pytest
import torch

from blockrecon.physics import (
    coil_energy,
    compress_acquisition,
    compress_coils,
    radial_3d,
    radial_spokes,
    simulate_acquisition,
)
from blockrecon.recon import cg_sense, psnr

SIZE = 24


@pytest.fixture(scope="module")
def scan():
    """A small simulated radial scan with 16 birdcage coils at 40 dB SNR."""
    coord = radial_3d(radial_spokes(SIZE, 8.0), SIZE)
    return simulate_acquisition(coord, (SIZE,) * 3, n_coils=16, snr_db=40)


def _cg(kspace, maps, coord, n_iter=15):
    return cg_sense(kspace, coord, maps, n_iter=n_iter, tol=0.0, progress=False)


def test_matrix_has_orthonormal_rows(scan):
    result = compress_coils(scan.kspace, scan.maps, n_virtual=6)
    assert result.matrix.shape == (6, 16)
    assert result.kspace.shape == (6, *scan.kspace.shape[1:])
    assert result.maps.shape == (6, SIZE, SIZE, SIZE)
    gram = result.matrix @ result.matrix.conj().T
    torch.testing.assert_close(gram, torch.eye(6, dtype=gram.dtype), atol=1e-5, rtol=0)
    assert result.kspace.dtype == result.maps.dtype == torch.complex64


def test_all_coils_leave_the_sense_solution_unchanged(scan):
    result = compress_coils(scan.kspace, scan.maps, n_virtual=16)
    assert result.energy == pytest.approx(1.0)
    # CG amplifies float32 rounding: merely reordering the coils changes the image after 10
    # iterations by about 1e-5 of its norm, after 15 by 2e-4.
    full = _cg(scan.kspace, scan.maps, scan.coord, n_iter=10)
    virtual = _cg(result.kspace, result.maps, scan.coord, n_iter=10)
    assert (virtual - full).norm() / full.norm() < 2e-4


def test_energy_kept_decreases_with_fewer_coils(scan):
    kept = [compress_coils(scan.kspace, n_virtual=n).energy for n in range(16, 0, -1)]
    assert all(a > b for a, b in zip(kept, kept[1:], strict=False))
    torch.testing.assert_close(
        coil_energy(scan.kspace).flip(0).tolist(), kept, atol=1e-9, rtol=0, check_dtype=False
    )


def test_energy_picks_the_fewest_coils_holding_it(scan):
    kept = coil_energy(scan.kspace)
    target = float(kept[4])
    result = compress_coils(scan.kspace, energy=target)
    assert result.matrix.shape[0] == 5
    assert compress_coils(scan.kspace, energy=1.0).matrix.shape[0] <= 16


def test_half_the_coils_keep_cg_sense_within_half_a_db(scan):
    result = compress_coils(scan.kspace, scan.maps, n_virtual=8)
    full = psnr(_cg(scan.kspace, scan.maps, scan.coord), scan.image)
    half = psnr(_cg(result.kspace, result.maps, scan.coord), scan.image)
    assert half > full - 0.5, (full, half)


def test_compress_acquisition_compresses_kspace_and_maps(scan):
    assert compress_acquisition(scan, None) is scan
    compressed = compress_acquisition(scan, 4)
    assert compressed.num_coils == 4 and compressed.maps.shape[0] == 4
    assert compressed.image is scan.image


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_virtual": 0}, "n_virtual must be a positive integer"),
        ({"n_virtual": 5}, "between 1 and the 4 coils"),
        ({"n_virtual": 2.0}, "n_virtual must be a positive integer"),
        ({}, "exactly one of n_virtual and energy"),
        ({"n_virtual": 2, "energy": 0.9}, "exactly one"),
        ({"energy": 1.5}, r"energy must lie in \(0, 1\]"),
        ({"energy": 0.0}, "energy must be a positive"),
    ],
)
def test_bad_counts_are_refused(kwargs, match):
    kspace = torch.randn(4, 10, 3, dtype=torch.complex64)
    with pytest.raises(ValueError, match=match):
        compress_coils(kspace, **kwargs)


def test_bad_data_are_refused():
    kspace = torch.randn(4, 30, dtype=torch.complex64)
    with pytest.raises(ValueError, match="kspace must be complex"):
        compress_coils(kspace.real, n_virtual=2)
    with pytest.raises(ValueError, match="shape \\(coils, \\*samples\\)"):
        compress_coils(kspace[0], n_virtual=1)
    with pytest.raises(ValueError, match="coil count mismatch"):
        compress_coils(kspace, torch.ones(3, 4, 4, 4, dtype=torch.complex64), n_virtual=2)
    with pytest.raises(ValueError, match="maps must be complex"):
        compress_coils(kspace, torch.ones(4, 4, 4, 4), n_virtual=2)
    with pytest.raises(ValueError, match="maps must be a tensor of shape"):
        compress_coils(kspace, torch.ones(4, 4, dtype=torch.complex64), n_virtual=2)
    with pytest.raises(ValueError, match="k-space data are zero"):
        compress_coils(torch.zeros_like(kspace), n_virtual=2)
