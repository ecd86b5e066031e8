"""Sparse conv / transposed conv / pooling equal dense torch (or the N-D loop reference in 4D)
at the active sites, outputs and gradients (features and weights), for several site patterns."""

import math

import pytest
import torch
from sparse_reference import conv_nd, conv_transpose_nd, pool_nd, random_sparse, site_mask
from torch.nn import functional as F

from blockrecon.sparse import (
    SparseAvgPool,
    SparseConv,
    SparseConvTranspose,
    SparseMaxPool,
    cat,
    sparse_conv,
)

SHAPES = {2: (8, 10), 3: (6, 4, 8), 4: (4, 4, 2, 8)}
ANISO = {2: (2, 4), 3: (2, 2, 4), 4: (2, 2, 2, 4)}  # "2 in space, 4 in time"
TOL = {"atol": 1e-10, "rtol": 1e-10}


def _torch_op(name, ndim):
    """torch.nn.functional op for 2D/3D; None in 4D (use the loop reference)."""
    return getattr(F, f"{name}{ndim}d") if ndim < 4 else None


def dense_submanifold(layer, x):
    op, w = _torch_op("conv", layer.ndim), layer.dense_weight()
    if op is None:
        return conv_nd(x, w, layer.bias, dilation=layer.dilation, same=True)
    return op(x, w, layer.bias, padding="same", dilation=layer.dilation)


def dense_conv(layer, x):
    op, w = _torch_op("conv", layer.ndim), layer.dense_weight()
    if op is None:
        return conv_nd(x, w, layer.bias, layer.stride, layer.dilation, layer.padding)
    return op(x, w, layer.bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)


def dense_transpose(layer, x):
    op, w = _torch_op("conv_transpose", layer.ndim), layer.dense_weight()
    if op is None:
        return conv_transpose_nd(
            x, w, layer.bias, layer.stride, layer.dilation, layer.padding, layer.output_padding
        )
    return op(
        x,
        w,
        layer.bias,
        stride=layer.stride,
        padding=layer.padding,
        output_padding=layer.output_padding,
        dilation=layer.dilation,
    )


def dense_max_pool(layer, x):
    op = _torch_op("max_pool", layer.ndim)
    if op is None:
        return pool_nd(x, layer.kernel_size, layer.stride, "max")
    return op(x, layer.kernel_size, layer.stride)


def dense_avg_pool(layer, x):
    op = _torch_op("avg_pool", layer.ndim)
    if op is None:
        return pool_nd(x, layer.kernel_size, layer.stride, "sum") / math.prod(layer.kernel_size)
    return op(x, layer.kernel_size, layer.stride)


def dense_avg_active(layer, x):
    """Mean over active inputs = avg_pool(zero-filled) / avg_pool(occupancy)."""
    occupancy = site_mask(x).unsqueeze(1).to(x.dtype)
    return dense_avg_pool(layer, x.to_dense()) / dense_avg_pool(layer, occupancy)


CASES = {
    # name: (layer factory(ndim), dense counterpart(layer, sparse input), site rule)
    "submanifold": (
        lambda d: SparseConv(2, 3, 3, ndim=d),
        lambda m, x: dense_submanifold(m, x.to_dense()),
        "same",
    ),
    "submanifold_aniso": (
        lambda d: SparseConv(2, 3, (3, 2, 1, 3)[:d], dilation=(1, 2, 1, 2)[:d]),
        lambda m, x: dense_submanifold(m, x.to_dense()),
        "same",
    ),
    "strided": (
        lambda d: SparseConv(2, 3, ANISO[d], stride=ANISO[d]),
        lambda m, x: dense_conv(m, x.to_dense()),
        "conv",
    ),
    "generalized": (
        lambda d: SparseConv(2, 3, 3, stride=2, padding=1, dilation=(1,) * (d - 1) + (2,), ndim=d),
        lambda m, x: dense_conv(m, x.to_dense()),
        "conv",
    ),
    "transpose": (
        lambda d: SparseConvTranspose(2, 3, ANISO[d], stride=ANISO[d]),
        lambda m, x: dense_transpose(m, x.to_dense()),
        "transpose",
    ),
    "transpose_general": (
        lambda d: SparseConvTranspose(2, 3, 3, stride=2, padding=1, output_padding=1, ndim=d),
        lambda m, x: dense_transpose(m, x.to_dense()),
        "transpose",
    ),
    "max_pool": (
        lambda d: SparseMaxPool(ANISO[d]),
        lambda m, x: dense_max_pool(m, x.to_dense(float("-inf"))),
        "conv",
    ),
    "max_pool_overlap": (
        lambda d: SparseMaxPool((3, 3, 1, 3)[:d], stride=2),
        lambda m, x: dense_max_pool(m, x.to_dense(float("-inf"))),
        "pool",
    ),
    "avg_pool_kernel": (
        lambda d: SparseAvgPool(ANISO[d], divisor="kernel"),
        lambda m, x: dense_avg_pool(m, x.to_dense()),
        "conv",
    ),
    "avg_pool_active": (lambda d: SparseAvgPool(ANISO[d]), dense_avg_active, "conv"),
}


def expected_sites(layer, rule, x):
    """Dense bool (B, *out_shape): where the sparse layer must have output sites."""
    occupancy = site_mask(x).unsqueeze(1).double()
    if rule == "same":
        return site_mask(x)
    ones = torch.ones(1, 1, *layer.kernel_size, dtype=torch.float64)
    if rule == "transpose":
        out = conv_transpose_nd(
            occupancy, ones, None, layer.stride, layer.dilation, layer.padding, layer.output_padding
        )
    else:
        dilation = getattr(layer, "dilation", 1)
        padding = getattr(layer, "padding", 0)
        out = conv_nd(occupancy, ones, None, layer.stride, dilation, padding)
    return out[:, 0] > 0


def check_against_dense(layer, dense_fn, rule, x):
    """Sparse output == dense output at the output sites; gradients equal; site set right."""
    params = list(layer.parameters())
    out = layer(x)
    ref = dense_fn(layer, x)
    assert tuple(ref.shape[2:]) == out.spatial_shape
    ref_at_sites = ref.movedim(1, -1)[tuple(out.coords.unbind(1))]
    torch.testing.assert_close(out.feats, ref_at_sites, **TOL)
    assert torch.equal(site_mask(out), expected_sites(layer, rule, x))
    if out.num_sites == 0:
        return out
    g = torch.randn_like(out.feats)
    inputs = [x.feats, *params]
    grads = torch.autograd.grad((out.feats * g).sum(), inputs)
    grads_ref = torch.autograd.grad((ref_at_sites * g).sum(), inputs)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    return out


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("pattern", ["random", "empty", "single", "border"])
def test_layer_equals_dense(ndim, name, pattern):
    torch.manual_seed(1)
    make, dense_fn, rule = CASES[name]
    layer = make(ndim).double()
    if layer.__class__.__name__.startswith("SparseConv") and layer.bias is not None:
        torch.nn.init.normal_(layer.bias)
    x = random_sparse(SHAPES[ndim], 2, pattern, seed=ndim)
    out = check_against_dense(layer, dense_fn, rule, x)
    if pattern == "empty":
        assert out.num_sites == 0 and out.feats.shape == (0, out.num_channels)


@pytest.mark.parametrize("ndim", [2, 3])
def test_loop_reference_matches_torch(ndim):
    """The loop references used in 4D agree with torch where torch has the op."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, *SHAPES[ndim], generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, *(3, 2, 3)[:ndim], generator=gen, dtype=torch.float64)
    conv, conv_t = _torch_op("conv", ndim), _torch_op("conv_transpose", ndim)
    torch.testing.assert_close(
        conv_nd(x, w, None, 2, (1, 2, 1)[:ndim], 1),
        conv(x, w, stride=2, padding=1, dilation=(1, 2, 1)[:ndim]),
    )
    torch.testing.assert_close(
        conv_nd(x, w, None, dilation=2, same=True), conv(x, w, padding="same", dilation=2)
    )
    wt = w.transpose(0, 1)
    torch.testing.assert_close(
        conv_transpose_nd(x, wt, None, 2, 1, 1, 1),
        conv_t(x, wt, stride=2, padding=1, output_padding=1),
    )
    torch.testing.assert_close(
        pool_nd(x, ANISO[ndim], ANISO[ndim], "max"), _torch_op("max_pool", ndim)(x, ANISO[ndim])
    )


def test_float32_matches_dense():
    torch.manual_seed(0)
    layer = SparseConv(4, 5, 3, ndim=3)
    x = random_sparse(SHAPES[3], 4, "random", dtype=torch.float32)
    out = layer(x)
    ref = dense_submanifold(layer, x.to_dense()).movedim(1, -1)[tuple(out.coords.unbind(1))]
    torch.testing.assert_close(out.feats, ref, atol=1e-5, rtol=1e-5)


def test_gradcheck_custom_backward():
    x = random_sparse((5, 4, 3), 2, "random", seed=3)
    for layer in (
        SparseConv(2, 2, 3),
        SparseConv(2, 2, 2, stride=2),
        SparseConvTranspose(2, 2, 2, stride=2),
    ):
        kmap = layer.double().kernel_map(x)
        inputs = (
            x.feats.detach().clone().requires_grad_(),
            layer.weight.detach().clone().requires_grad_(),
        )
        assert torch.autograd.gradcheck(
            lambda f, w, kmap=kmap: sparse_conv(x.with_feats(f), w, None, kmap).feats, inputs
        )
    pool = SparseMaxPool(2, ndim=3)
    assert torch.autograd.gradcheck(
        lambda f: pool(x.with_feats(f)).feats, (x.feats.detach().clone().requires_grad_(),)
    )


def _pipeline(x):
    torch.manual_seed(0)
    sub, down = SparseConv(8, 8, 3), SparseConv(8, 8, 2, stride=2)
    up, pool = SparseConvTranspose(16, 4, 2, stride=2), SparseMaxPool(2)
    avg = SparseAvgPool((1, 1, 2), stride=(1, 1, 2))
    a = sub(x)
    a = a.with_feats(torch.relu(a.feats))
    c = down(a)
    d = pool(a)
    e = up(cat([c, d]))
    f = avg(e)
    loss = (f.feats.square()).sum()
    params = [*sub.parameters(), *down.parameters(), *up.parameters()]
    grads = torch.autograd.grad(loss, [x.feats, *params])
    return [f.feats.detach(), *grads]


def test_bitwise_identical_with_1_and_2_threads():
    x = random_sparse((24, 24, 24), 8, "random", batch=2, density=0.5, dtype=torch.float32)
    saved = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_pipeline(x))
    finally:
        torch.set_num_threads(saved)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
