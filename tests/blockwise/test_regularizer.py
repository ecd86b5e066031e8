"""Block-wise application equals the full-volume network: outputs and every gradient; bad
input named; one volume kept for backward."""

from __future__ import annotations

import pytest
import torch
from blockwise_nets import small_net as _net
from torch import nn

from blockrecon.blockwise import BlockwiseRegularizer, apply_full
from blockrecon.blockwise.regularizer import crop_padded, pad_volume
from blockrecon.nn import ResNet3d


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _grads(net: nn.Module, apply, x: torch.Tensor, region: tuple[slice, ...]):
    """Output and gradients (input, then every parameter) of a weighted sum over ``region``."""
    x = x.detach().clone().requires_grad_(True)
    net.zero_grad()
    y = apply(x)
    weights = torch.linspace(-1, 2, y[region].numel(), dtype=torch.float64)
    (y[region].real.reshape(-1) * weights).sum().backward()
    return y.detach(), [x.grad] + [p.grad.clone() for p in net.parameters()]


def _assert_blockwise_matches_full(net, x, patch, region, **kwargs):
    padding = kwargs.get("padding", "reflect")
    blockwise = BlockwiseRegularizer(net, patch, **kwargs)
    y_blk, g_blk = _grads(net, blockwise, x, region)
    y_ref, g_ref = _grads(net, lambda v: apply_full(net, v, padding), x, region)
    assert y_blk.shape == y_ref.shape == x.shape[:1] + y_ref.shape[1:]
    assert _rel(y_blk, y_ref) < 1e-5
    for i, (gb, gr) in enumerate(zip(g_blk, g_ref, strict=True)):
        assert gr.norm() > 0, f"gradient {i} vanishes: the comparison would be empty"
        assert _rel(gb, gr) < 1e-4, f"gradient {i} differs by {_rel(gb, gr):.2e}"


REGIONS = {
    "all": (Ellipsis,),
    "corner": (Ellipsis, slice(0, 3), slice(0, 3), slice(0, 3)),  # border patch only
    "interior": (Ellipsis, slice(5, 7), slice(5, 7), slice(4, 6)),
}


@pytest.mark.parametrize("region", sorted(REGIONS))
@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_resnet_blockwise_equals_full_anisotropic(region, padding):
    x = torch.randn(2, 2, 13, 11, 9, dtype=torch.float64)
    _assert_blockwise_matches_full(_net("resnet"), x, (4, 6, 5), REGIONS[region], padding=padding)


@pytest.mark.parametrize("patch_batch", [1, 4])
def test_resnet_blockwise_complex_input_and_patch_batch(patch_batch):
    x = torch.randn(1, 12, 9, 10, dtype=torch.complex128)
    _assert_blockwise_matches_full(_net("resnet"), x, 4, REGIONS["all"], patch_batch=patch_batch)


def test_resnet_blockwise_halo_larger_than_margin_and_no_checkpoint():
    net, x = _net("resnet"), torch.randn(1, 2, 9, 9, 9, dtype=torch.float64)
    _assert_blockwise_matches_full(net, x, 4, REGIONS["all"], halo=5)
    _assert_blockwise_matches_full(net, x, 4, REGIONS["all"], checkpoint=False)


@pytest.mark.parametrize("region", ["all", "corner"])
def test_valid_unet_blockwise_equals_full_with_odd_sizes(region):
    # stride 2: an odd volume is padded at the end to a multiple of the stride
    x = torch.randn(1, 2, 11, 10, 13, dtype=torch.float64)
    _assert_blockwise_matches_full(_net("unet"), x, (4, 6, 4), REGIONS[region], patch_batch=2)


def test_padded_net_exact_in_interior_approximate_at_border():
    torch.manual_seed(0)
    net = ResNet3d(width=4, n_layers=3, valid=False).double()
    x = torch.randn(1, 2, 14, 14, 14, dtype=torch.float64)
    with torch.no_grad():
        y_blk = BlockwiseRegularizer(net, 4, padding="zeros")(x)
        y_ref = net(x)
    radius = (net.receptive_field - 1) // 2
    inner = (Ellipsis,) + (slice(radius, -radius),) * 3
    assert _rel(y_blk[inner], y_ref[inner]) < 1e-12
    assert _rel(y_blk, y_ref) > 1e-6  # per-layer zero padding differs at the border


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda: BlockwiseRegularizer(_net("resnet"), 4, halo=2),
            "smaller than the network margin",
        ),
        (lambda: BlockwiseRegularizer(_net("resnet"), 4, padding="wrap"), "padding"),
        (lambda: BlockwiseRegularizer(_net("resnet"), 4, patch_batch=0), "patch_batch"),
    ],
)
def test_bad_construction_raises_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "kind,x,patch,match",
    [
        ("resnet", torch.randn(1, 2, 6, 6, 6), 8, "larger than the volume"),
        ("unet", torch.randn(1, 2, 8, 8, 8), 3, "not a multiple of the network stride"),
        ("resnet", torch.randn(2, 6, 6, 6), 4, "spatial dimensions"),
        ("resnet", torch.randn(6, 6, 6, dtype=torch.complex64), 4, "spatial dimensions"),
        ("resnet", torch.randn(1, 2, 3, 3, 3), 3, "reflect padding"),
    ],
)
def test_bad_input_raises_value_error(kind, x, patch, match):
    with pytest.raises(ValueError, match=match):
        BlockwiseRegularizer(_net(kind).float(), patch)(x)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_crop_padded_equals_crop_of_padded_volume(padding):
    x = torch.randn(2, 3, 9, 7, 8, dtype=torch.float64)
    pad = ((3, 4), (2, 2), (3, 5))
    padded = pad_volume(x, pad, padding)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):  # regions as a plan makes them: at least a halo on each side of a core
        region = []
        for size, (before, after) in zip(padded.shape[2:], pad, strict=True):
            length = int(
                torch.randint(2 * max(before, after) + 1, size + 1, (1,), generator=generator)
            )
            start = int(torch.randint(0, size - length + 1, (1,), generator=generator))
            region.append(slice(start, start + length))
        assert torch.equal(crop_padded(x, region, pad, padding), padded[(Ellipsis, *region)])


def test_complex_blockwise_keeps_one_volume_for_backward():
    """Saved for backward: the input (a view, held by the caller anyway) and nothing else of the
    volume's size: no padded copy, no real/imaginary channel copy, no second output."""
    net = ResNet3d(width=4, n_layers=3)
    x = torch.randn(1, 24, 24, 24, dtype=torch.complex64, requires_grad=True)
    storages = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        BlockwiseRegularizer(net, 8, padding="zeros")(x)
    volume_sized = [n for n in storages.values() if n >= x.numel() * x.element_size()]
    assert volume_sized == [x.numel() * x.element_size()]
