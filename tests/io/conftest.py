"""Shared fixtures for the file-format tests: a small, fully populated acquisition."""

import pytest
import torch

from blockrecon.io import Acquisition

IMAGE_SHAPE = (4, 6, 8)
VOXEL_SIZE_MM = (3.0, 2.0, 1.5)


def make_acquisition(
    coils: int = 3, readouts: int = 5, samples: int = 7, seed: int = 0, extras: bool = True
) -> Acquisition:
    """Random acquisition on a (4, 6, 8) grid with coord inside [-N/2, N/2)."""
    g = torch.Generator().manual_seed(seed)
    half = torch.tensor(IMAGE_SHAPE, dtype=torch.float32) / 2
    coord = (2 * torch.rand(readouts, samples, 3, generator=g) - 1) * half * 0.999
    kspace = torch.randn(coils, readouts, samples, dtype=torch.complex64, generator=g)
    if not extras:
        return Acquisition(kspace, coord, IMAGE_SHAPE, VOXEL_SIZE_MM)
    return Acquisition(
        kspace,
        coord,
        IMAGE_SHAPE,
        VOXEL_SIZE_MM,
        maps=torch.randn(coils, *IMAGE_SHAPE, dtype=torch.complex64, generator=g),
        dcf=torch.rand(readouts, samples, generator=g),
        image=torch.randn(IMAGE_SHAPE, dtype=torch.complex64, generator=g),
    )


@pytest.fixture
def acquisition() -> Acquisition:
    return make_acquisition()


@pytest.fixture
def acquisition_factory():
    """``make_acquisition`` itself, for tests that need several or a variant."""
    return make_acquisition
