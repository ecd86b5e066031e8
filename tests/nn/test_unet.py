"""U-Net: tiling contract (margin, stride, receptive field), exact crops, parameter counts."""

import pytest
import torch

from blockrecon.nn import UNet


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_standard_unet_has_31m_parameters_and_lightweight_under_2_percent():
    standard = _params(UNet(2, 1, 2, base_width=64, depth=5))
    assert abs(standard - 31.03e6) < 0.05e6
    assert _params(UNet(2, 1, 2, base_width=4, depth=5)) < 0.02 * standard
    assert _params(UNet(2, 1, 4, base_width=8, depth=5, norm="batch")) < 0.02 * standard


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_valid_margin_gives_output_size(depth):
    net = UNet(2, 1, 1, base_width=2, depth=depth, valid=True)
    assert net.stride == 2 ** (depth - 1)
    assert net.receptive_field == 2 * net.margin + 1
    for core in (net.stride, 3 * net.stride):
        n = net.input_size(core)
        assert n == core + 2 * net.margin
        out = net(torch.zeros(1, 1, n, n + net.stride))
        assert out.shape[2:] == (core, core + net.stride)


def test_valid_margin_matches_the_paper():
    # Ronneberger et al.: 572 -> 388 at depth 5, before our final crop of 2 per side.
    net = UNet(2, 1, 2, base_width=64, depth=5, valid=True)
    assert net.margin == (572 - 388) // 2 + 2
    assert net.input_size(384) == 572


@pytest.mark.parametrize("dim,depth", [(2, 2), (2, 3), (2, 4), (3, 2)])
def test_valid_unet_on_aligned_crops_equals_full_output(dim, depth):
    torch.manual_seed(depth)
    net = UNet(dim, 2, 3, base_width=3, depth=depth, valid=True).double()
    s = net.stride
    full_core = 4 * s if dim == 2 else 2 * s
    size = net.input_size(full_core)
    x = torch.randn(1, 2, *(size,) * dim, dtype=torch.float64)
    full = net(x)
    core = s if dim == 3 else 2 * s
    n_in = net.input_size(core)
    for origin in [
        (0,) * dim,
        (s,) * dim,
        (full_core - core,) * dim,
        tuple(s * (i % 2) for i in range(dim)),
    ]:
        crop = x[(slice(None), slice(None), *(slice(o, o + n_in) for o in origin))]
        expect = full[(slice(None), slice(None), *(slice(o, o + core) for o in origin))]
        torch.testing.assert_close(net(crop), expect, rtol=0, atol=1e-5)


def test_valid_crop_at_misaligned_origin_differs():
    """The stride alignment is a real requirement, not a formality."""
    torch.manual_seed(0)
    net = UNet(2, 1, 1, base_width=3, depth=3, valid=True).double()
    x = torch.randn(1, 1, net.input_size(16), net.input_size(16), dtype=torch.float64)
    full = net(x)
    n = net.input_size(8)
    out = net(x[..., 1 : 1 + n, 1 : 1 + n])
    assert (out - full[..., 1:9, 1:9]).abs().max() > 1e-3


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_padded_receptive_field_is_the_true_field(depth):
    """Bump one input column; the farthest output column that changes is the half-field."""
    torch.manual_seed(0)
    net = UNet(2, 1, 1, base_width=2, depth=depth).double()
    with torch.no_grad():  # positive weights, no bias: dependence <=> change
        for name, p in net.named_parameters():
            p.copy_(p.abs() if name.endswith("weight") else torch.zeros_like(p))
    s, n = net.stride, 64 + 8 * net.stride
    base = torch.ones(1, 1, s, n, dtype=torch.float64)
    out0 = net(base)
    half = 0
    for col in range(n // 2 - s, n // 2 + s):
        bumped = base.clone()
        bumped[..., col] += 1e6
        changed = torch.nonzero((net(bumped) - out0).abs().sum(dim=(0, 1, 2)) > 0).flatten()
        half = max(half, int((changed - col).abs().max()))
    assert net.margin == 0
    assert net.receptive_field == 2 * half + 1


def test_padded_output_size_equals_input_size():
    net = UNet(3, 2, 2, base_width=2, depth=3)
    assert net(torch.zeros(1, 2, 8, 12, 4)).shape == (1, 2, 8, 12, 4)
    assert net.input_size((8, 4)) == (8, 4)


def test_incompatible_sizes_raise_clear_errors():
    valid = UNet(2, 1, 1, base_width=2, depth=3, valid=True)
    with pytest.raises(ValueError, match="multiple of the stride 4"):
        valid.input_size(6)
    with pytest.raises(ValueError, match="2\\*margin"):
        valid(torch.zeros(1, 1, valid.input_size(8) + 1, valid.input_size(8)))
    with pytest.raises(ValueError, match="multiple of 4"):
        UNet(2, 1, 1, base_width=2, depth=3)(torch.zeros(1, 1, 10, 12))
    with pytest.raises(ValueError, match="expected input of shape"):
        valid(torch.zeros(1, 2, 40, 40))
    with pytest.raises(ValueError, match="norm"):
        UNet(norm="instance")
    with pytest.raises(ValueError, match="widths"):
        UNet(2, 1, 1, depth=2, widths=(4, 4, 4))


def test_config_rebuilds_the_same_architecture():
    net = UNet(2, 1, 4, base_width=3, depth=3, norm="batch")
    clone = UNet(**net.config)
    clone.load_state_dict(net.state_dict())
    assert clone.widths == net.widths == (3, 3, 6, 6, 12, 12, 6, 6, 6, 3, 3, 3)
