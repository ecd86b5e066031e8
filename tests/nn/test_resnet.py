"""ResNet3d: declared tiling contract, residual structure, complex conversion."""

from __future__ import annotations

import pytest
import torch

from blockrecon.nn import ResNet3d, channels_to_complex, complex_to_channels


@pytest.mark.parametrize("n_layers,kernel", [(5, 3), (2, 5)])
def test_valid_resnet_output_size_matches_declared_margin(n_layers, kernel):
    net = ResNet3d(width=3, n_layers=n_layers, kernel_size=kernel)
    x = torch.randn(2, 2, 15, 13, 14)
    y = net(x)
    m = net.margin
    assert m == n_layers * (kernel // 2)
    assert net.receptive_field == 2 * m + 1 and net.stride == 1
    assert y.shape == (2, 2, 15 - 2 * m, 13 - 2 * m, 14 - 2 * m)
    assert net.input_size(y.shape[-1]) == x.shape[-1]


def test_residual_is_identity_when_last_layer_is_zero():
    net = ResNet3d(width=3, n_layers=3)
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    x = torch.randn(1, 2, 9, 9, 9)
    assert torch.equal(net(x), x[..., 3:-3, 3:-3, 3:-3])


def test_each_output_depends_only_on_its_receptive_field():
    torch.manual_seed(0)
    net = ResNet3d(width=3, n_layers=2).double()
    x = torch.randn(1, 2, 9, 9, 9, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, 2, 2, 2].backward()
    touched = x.grad.abs().sum(dim=(0, 1)).nonzero()
    assert touched.min() >= 2 and touched.max() <= 2 + 2 * net.margin


def test_padded_variant_keeps_size():
    net = ResNet3d(width=3, n_layers=5, valid=False)
    assert net.margin == 0 and net.receptive_field == 11
    assert net(torch.randn(1, 2, 7, 6, 5)).shape == (1, 2, 7, 6, 5)


def test_complex_channel_round_trip_and_dtypes():
    z = torch.randn(3, 4, 5, dtype=torch.complex64)
    c = complex_to_channels(z)
    assert c.shape == (3, 2, 4, 5) and c.dtype == torch.float32
    assert torch.equal(c[:, 0], z.real) and torch.equal(c[:, 1], z.imag)
    assert torch.equal(channels_to_complex(c), z)
    assert complex_to_channels(z.to(torch.complex128)).dtype == torch.float64


@pytest.mark.parametrize(
    "fn,arg,match",
    [
        (complex_to_channels, torch.randn(2, 3), "complex"),
        (channels_to_complex, torch.randn(2, 3, 4), r"\(N, 2"),
        (lambda x: ResNet3d(n_layers=1), None, "n_layers"),
        (lambda x: ResNet3d(kernel_size=4), None, "kernel_size"),
        (lambda x: ResNet3d()(x), torch.randn(2, 8, 8, 8), "N, C, D, H, W"),
        (lambda x: ResNet3d()(x), torch.randn(1, 2, 10, 10, 10), "too small"),
    ],
)
def test_bad_input_raises_value_error(fn, arg, match):
    with pytest.raises(ValueError, match=match):
        fn(arg)
