"""A small simulated 2D acquisition and its 16-frame blocks, shared by the ULM tests."""

import pytest

from blockrecon.ulm.blocks import acquisition_blocks
from blockrecon.ulm.simulate import simulate_acquisition


@pytest.fixture(scope="module")
def acquisition():
    return simulate_acquisition((8, 8), 64, 3.0, seed=3, progress=False)


@pytest.fixture(scope="module")
def blocks(acquisition):
    return acquisition_blocks(acquisition, 16)
