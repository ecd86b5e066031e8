"""blockrecon.physics."""

from .nufft import NUFFT
from .sense import Sense
from .toeplitz import ToeplitzNormal, apply_toeplitz, toeplitz_kernel

__all__ = ["NUFFT", "Sense", "ToeplitzNormal", "apply_toeplitz", "toeplitz_kernel"]
