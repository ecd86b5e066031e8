"""blockrecon.physics."""

from .acquisition import Acquisition, check_acquisition, standard_dtypes
from .angio import angio_phantom
from .coils import birdcage_maps
from .compression import CompressedCoils, coil_energy, compress_acquisition, compress_coils
from .dcf import pipe_menon_dcf
from .maps import estimate_maps
from .nufft import BACKEND_NAMES, NUFFT, available_backends, resolve_backend
from .operator import NORMALS, LinearOperator, max_eigenvalue
from .phantom import random_ellipsoids, shepp_logan_3d
from .sense import Sense
from .simulate import simulate_acquisition, simulate_radial
from .toeplitz import ToeplitzNormal, apply_toeplitz, toeplitz_kernel
from .trajectory import radial_3d, radial_coord, radial_spokes, stack_of_spirals, stack_of_stars
from .undersample import kept_spokes, undersample_spokes

__all__ = [
    "NUFFT",
    "Sense",
    "LinearOperator",
    "NORMALS",
    "max_eigenvalue",
    "ToeplitzNormal",
    "apply_toeplitz",
    "toeplitz_kernel",
    "birdcage_maps",
    "CompressedCoils",
    "compress_coils",
    "compress_acquisition",
    "coil_energy",
    "pipe_menon_dcf",
    "estimate_maps",
    "random_ellipsoids",
    "angio_phantom",
    "shepp_logan_3d",
    "Acquisition",
    "check_acquisition",
    "standard_dtypes",
    "simulate_acquisition",
    "simulate_radial",
    "radial_3d",
    "radial_coord",
    "radial_spokes",
    "stack_of_spirals",
    "stack_of_stars",
    "kept_spokes",
    "undersample_spokes",
    "BACKEND_NAMES",
    "available_backends",
    "resolve_backend",
]
