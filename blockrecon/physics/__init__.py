"""blockrecon.physics."""

from .coils import birdcage_maps
from .dcf import pipe_menon_dcf
from .maps import estimate_maps
from .nufft import NUFFT
from .phantom import random_ellipsoids, shepp_logan_3d
from .sense import Sense
from .simulate import SimulatedAcquisition, simulate_acquisition
from .toeplitz import ToeplitzNormal, apply_toeplitz, toeplitz_kernel
from .trajectory import radial_3d, stack_of_spirals, stack_of_stars

__all__ = ["NUFFT", "Sense", "ToeplitzNormal", "apply_toeplitz", "toeplitz_kernel",
           "birdcage_maps", "pipe_menon_dcf", "estimate_maps", "random_ellipsoids",
           "shepp_logan_3d", "SimulatedAcquisition", "simulate_acquisition", "radial_3d",
           "stack_of_spirals", "stack_of_stars"]
