"""Fixtures shared by the whole test suite (helpers live in ``operator_checks.py``)."""

import pytest
import torch


@pytest.fixture
def rng() -> torch.Generator:
    """A freshly seeded torch generator (seed 0)."""
    return torch.Generator().manual_seed(0)
