"""Noise-free radial acquisitions of a 32^3 phantom shared by the reconstruction tests."""

import pytest
from recon_cases import radial_case


@pytest.fixture(scope="session")
def moderate():
    """400 spokes: 4x below angular Nyquist (pi/2 * 32^2 = 1608 spokes)."""
    return radial_case(400)


@pytest.fixture(scope="session")
def high():
    """100 spokes: 16x below angular Nyquist."""
    return radial_case(100)
