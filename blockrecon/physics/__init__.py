"""blockrecon.physics."""

from .nufft import NUFFT
from .toeplitz import ToeplitzNormal, apply_toeplitz, toeplitz_kernel

__all__ = ["NUFFT", "ToeplitzNormal", "apply_toeplitz", "toeplitz_kernel"]
