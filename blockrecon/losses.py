"""Differentiable training losses for complex reconstructions: relative L2, normalized L1+L2
(the self-supervised k-space loss) and SSIM.

Each takes an estimate and a target of the same shape, complex or real (images
``(*batch, *spatial)`` or k-space ``(coils, *samples)``); they reduce over everything and return
a 0-dim tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pair(estimate: torch.Tensor, target: torch.Tensor) -> None:
    if estimate.shape != target.shape:
        raise ValueError(
            f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} differ in shape"
        )


def relative_l2(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||estimate - target|| / ||target||`` (Frobenius norms over all entries)."""
    _check_pair(estimate, target)
    denominator = target.norm()
    if denominator == 0:
        raise ValueError("relative_l2 needs a non-zero target")
    return (estimate - target).norm() / denominator


def normalized_l1_l2(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||e - t||_2 / ||t||_2 + ||e - t||_1 / ||t||_1`` with entrywise moduli for complex data.

    The k-space loss of self-supervised learning via data undersampling (SSDU: Yaman et al.,
    Magn. Reson. Med. 84:3172-3191, 2020, eq. 6), where ``e = E_loss x`` is the network's image
    taken to the held-out samples and ``t`` their measured values.
    """
    _check_pair(estimate, target)
    l2, l1 = target.norm(), target.abs().sum()
    if l2 == 0:
        raise ValueError("normalized_l1_l2 needs a non-zero target")
    residual = estimate - target
    return residual.norm() / l2 + residual.abs().sum() / l1


def ssim_loss(estimate: torch.Tensor, target: torch.Tensor, window: int = 7) -> torch.Tensor:
    """``1 - SSIM`` of the magnitudes of 3D volumes ``(D, H, W)`` or ``(N, D, H, W)``.

    Uniform ``window^3`` local statistics at every position where the window fits, data range
    from the target (max - min of its magnitude), ``K1 = 0.01``, ``K2 = 0.03``.
    """
    _check_pair(estimate, target)
    if target.ndim not in (3, 4) or min(target.shape[-3:]) < window:
        raise ValueError(
            f"ssim_loss expects (D, H, W) or (N, D, H, W) volumes of at least "
            f"{window} voxels, got shape {tuple(target.shape)}"
        )
    a = estimate.abs().reshape(-1, 1, *target.shape[-3:])
    r = target.abs().reshape(-1, 1, *target.shape[-3:])
    data_range = (r.amax() - r.amin()).clamp_min(torch.finfo(r.dtype).eps)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def mean(v: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(v, window, stride=1)

    mu_a, mu_r = mean(a), mean(r)
    var_a, var_r = mean(a * a) - mu_a**2, mean(r * r) - mu_r**2
    cov = mean(a * r) - mu_a * mu_r
    ssim_map = ((2 * mu_a * mu_r + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_r**2 + c1) * (var_a + var_r + c2)
    )
    return 1 - ssim_map.mean()
