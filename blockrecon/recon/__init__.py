"""Classical reconstructions (gridding, CG-SENSE, L1-wavelet CS) and image-quality metrics."""

from .cg_sense import cg_sense, conjugate_gradient
from .grid import grid_recon
from .l1_wavelet import l1_wavelet
from .metrics import nrmse, psnr, ssim

__all__ = [
    "cg_sense",
    "conjugate_gradient",
    "grid_recon",
    "l1_wavelet",
    "nrmse",
    "psnr",
    "ssim",
]
