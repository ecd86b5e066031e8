"""Image-quality metrics for complex reconstructions: NRMSE, PSNR, SSIM.

Convention (shared by all three): compare magnitudes. The estimate's magnitude ``a`` is first
scaled by the least-squares factor ``alpha = <a, r> / <a, a>`` that best matches the reference
magnitude ``r`` over the mask, so a global complex factor on the estimate (scale and phase, as
left by a different k-space or coil-map normalization) does not count as error. Pass
``normalize=False`` to compare the raw magnitudes.

Inputs are torch tensors of equal shape (complex or real), an optional boolean mask of the same
shape; outputs are Python floats.
"""

from __future__ import annotations

import math

import torch

__all__ = ["nrmse", "psnr", "ssim"]


def _matched_magnitudes(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor | None,
    normalize: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float64 magnitudes ``(alpha * |estimate|, |reference|)``, full shape."""
    for name, x in (("estimate", estimate), ("reference", reference)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        finite = torch.isfinite(torch.view_as_real(x) if x.is_complex() else x)
        if not bool(finite.all()):
            raise ValueError(f"{name} contains NaN or Inf")
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate and reference shapes differ: {tuple(estimate.shape)} vs "
            f"{tuple(reference.shape)}"
        )
    a = estimate.detach().abs().to(torch.float64).cpu()
    r = reference.detach().abs().to(torch.float64).cpu()
    selected = _check_mask(mask, r.shape)
    if float(r[selected].abs().sum()) == 0:
        raise ValueError("reference is zero everywhere (inside the mask)")
    if normalize:
        energy = float((a[selected] ** 2).sum())
        alpha = float((a[selected] * r[selected]).sum()) / energy if energy > 0 else 1.0
        a = alpha * a
    return a, r


def _check_mask(mask: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a boolean torch.Tensor")
    if mask.shape != shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from image shape {tuple(shape)}")
    if not bool(mask.any()):
        raise ValueError("mask selects no voxel")
    return mask.cpu()


def _masked_magnitudes(
    estimate: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None, normalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matched magnitudes of :func:`_matched_magnitudes` at the masked voxels (1D)."""
    a, r = _matched_magnitudes(estimate, reference, mask, normalize)
    selected = _check_mask(mask, r.shape)
    return a[selected], r[selected]


def nrmse(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
) -> float:
    """Normalized root-mean-square error ``||alpha |x| - |r||| / |||r|||`` over the mask."""
    a, r = _masked_magnitudes(estimate, reference, mask, normalize)
    return float((a - r).norm() / r.norm())


def psnr(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
) -> float:
    """Peak SNR in dB, ``20 log10(max |r| / rmse)`` over the mask; ``inf`` when identical."""
    a, r = _masked_magnitudes(estimate, reference, mask, normalize)
    mse = float(((a - r) ** 2).mean())
    if mse == 0:
        return math.inf
    return 20 * math.log10(float(r.max()) / math.sqrt(mse))


def _window(kind: str, size: int, sigma: float) -> torch.Tensor:
    if kind == "gaussian":
        offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        profile = torch.exp(-0.5 * (offsets / sigma) ** 2)
    elif kind == "uniform":
        profile = torch.ones(size, dtype=torch.float64)
    else:
        raise ValueError(f"window must be 'gaussian' or 'uniform', got {kind!r}")
    return profile / profile.sum()


def _local_mean(x: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of a 3D volume with a 1D profile along each axis."""
    out = x[None, None]
    size = len(profile)
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = size
        out = torch.nn.functional.conv3d(out, profile.reshape(1, 1, *shape))
    return out[0, 0]


def ssim(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
    window: str = "gaussian",
    window_size: int = 7,
    sigma: float = 1.5,
) -> float:
    """Structural similarity of 3D magnitude volumes (Wang et al., 2004), in [-1, 1].

    Local statistics use a ``window_size^3`` Gaussian (``sigma`` voxels) or uniform window at
    every position where it fits; ``data_range`` is the reference's max - min, constants
    ``K1 = 0.01``, ``K2 = 0.03``. The SSIM map is averaged over the window centres inside the
    mask. Identical inputs give exactly 1.
    """
    a, r = _matched_magnitudes(estimate, reference, mask, normalize)
    if r.ndim != 3:
        raise ValueError(f"ssim expects 3D volumes, got shape {tuple(r.shape)}")
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 2:
        raise ValueError(f"window_size must be an integer >= 2, got {window_size!r}")
    if min(r.shape) < window_size:
        raise ValueError(f"volume {tuple(r.shape)} is smaller than window_size {window_size}")
    profile = _window(window, window_size, sigma)
    data_range = float(r.max() - r.min())
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mean_a, mean_r = _local_mean(a, profile), _local_mean(r, profile)
    var_a = _local_mean(a * a, profile) - mean_a**2
    var_r = _local_mean(r * r, profile) - mean_r**2
    cov = _local_mean(a * r, profile) - mean_a * mean_r
    ssim_map = ((2 * mean_a * mean_r + c1) * (2 * cov + c2)) / (
        (mean_a**2 + mean_r**2 + c1) * (var_a + var_r + c2)
    )
    half = (window_size - 1) // 2
    centres = _check_mask(mask, r.shape)[tuple(slice(half, half + n) for n in ssim_map.shape)]
    if not bool(centres.any()):
        raise ValueError("mask selects no window centre away from the volume border")
    return float(ssim_map[centres].mean())
