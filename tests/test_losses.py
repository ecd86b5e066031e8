"""Training losses: relative L2 and differentiable SSIM."""

from __future__ import annotations

import pytest
import torch

from blockrecon.losses import relative_l2, ssim_loss


def _volume(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 14, 14, 14, generator=g), 3, 1)
    return smooth[0, 0].to(torch.complex64) * (1 + 0.5j)


def test_relative_l2_values():
    t = _volume()
    assert relative_l2(t, t) == 0
    assert torch.isclose(relative_l2(1.1 * t, t), torch.tensor(0.1), atol=1e-6)
    assert torch.isclose(relative_l2(torch.zeros_like(t), t), torch.tensor(1.0))


def test_ssim_loss_zero_for_identical_and_grows_with_noise():
    t = _volume()
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(1)) * t.abs().mean()
    assert abs(float(ssim_loss(t, t))) < 1e-6
    small, large = ssim_loss(t + 0.1 * noise, t), ssim_loss(t + noise, t)
    assert 0 < small < large <= 2


def test_ssim_loss_gradient_points_to_target():
    t = _volume()
    x = (t + 0.3 * _volume(2)).clone().requires_grad_(True)
    loss = ssim_loss(x, t)
    loss.backward()
    with torch.no_grad():
        assert ssim_loss(x - 1e-2 * x.grad, t) < loss


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: relative_l2(torch.ones(3), torch.ones(4)), "shape"),
        (lambda: relative_l2(torch.ones(3), torch.zeros(3)), "non-zero"),
        (lambda: ssim_loss(torch.ones(5, 5, 5), torch.ones(5, 5, 5)), "at least 7"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
