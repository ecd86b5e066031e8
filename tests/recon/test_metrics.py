import math

import pytest
import torch

from blockrecon.physics.phantom import shepp_logan_3d
from blockrecon.recon.metrics import nrmse, psnr, ssim


@pytest.fixture(scope="module")
def reference():
    return shepp_logan_3d((16, 16, 16))


def _noisy(reference, level, seed=0):
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(reference.shape, generator=generator, dtype=torch.complex64)
    return reference + level * noise


def test_identical_inputs(reference):
    assert nrmse(reference, reference) == 0
    assert psnr(reference, reference) == math.inf
    assert ssim(reference, reference) == 1.0
    assert ssim(reference, reference, window="uniform") == 1.0


def test_global_complex_scale_is_ignored_only_when_normalizing(reference):
    scaled = (2.5 * torch.exp(torch.tensor(1j * 0.7))).to(torch.complex64) * reference
    assert nrmse(scaled, reference) < 1e-6
    assert psnr(scaled, reference) > 100
    assert ssim(scaled, reference) > 0.9999
    assert nrmse(scaled, reference, normalize=False) == pytest.approx(1.5, rel=1e-5)


def test_nrmse_of_hand_built_case():
    reference = torch.tensor([[[3.0, 4.0]]])
    estimate = torch.tensor([[[3.0, 0.0]]])
    # alpha = <a, r>/<a, a> = 9/9 = 1, error = (0, 4), |r| = 5
    assert nrmse(estimate, reference) == pytest.approx(0.8)
    assert psnr(estimate, reference) == pytest.approx(20 * math.log10(4 / math.sqrt(8)))


def test_metrics_degrade_monotonically_with_noise(reference):
    low, high = _noisy(reference, 0.01), _noisy(reference, 0.05)
    assert nrmse(low, reference) < nrmse(high, reference)
    assert psnr(low, reference) > psnr(high, reference)
    assert 0 < ssim(high, reference) < ssim(low, reference) < 1
    assert ssim(high, reference, window="uniform", window_size=5) < ssim(
        low, reference, window="uniform", window_size=5
    )


def test_mask_restricts_the_comparison(reference):
    mask = reference.abs() > 0.1
    corrupted = reference.clone()
    corrupted[~mask] += 0.5
    assert nrmse(corrupted, reference, mask=mask, normalize=False) == 0
    assert nrmse(corrupted, reference, normalize=False) > 0.1


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: nrmse(r[:8], r), "shapes differ"),
        (lambda r: psnr(r, torch.zeros_like(r)), "zero everywhere"),
        (lambda r: nrmse(r * float("nan"), r), "NaN"),
        (lambda r: nrmse(r, r, mask=torch.ones(3, dtype=torch.bool)), "mask shape"),
        (lambda r: nrmse(r, r, mask=torch.zeros(r.shape, dtype=torch.bool)), "no voxel"),
        (lambda r: nrmse(r, r, mask=torch.ones(r.shape)), "boolean"),
        (lambda r: ssim(r[0], r[0]), "3D"),
        (lambda r: ssim(r, r, window="box"), "window"),
        (lambda r: ssim(r[:4], r[:4]), "smaller than window_size"),
        (lambda r: nrmse(r.numpy(), r), "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(reference, call, message):
    with pytest.raises(ValueError, match=message):
        call(reference)
