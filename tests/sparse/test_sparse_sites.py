"""Cat, prune, batch norm, activations, to_dense module, and kernel-map cache reuse."""

import pytest
import torch
from sparse_reference import random_sparse, site_mask

from blockrecon.sparse import (
    SparseActivation,
    SparseBatchNorm,
    SparseCat,
    SparseConv,
    SparseConvTranspose,
    SparseLeakyReLU,
    SparseMaxPool,
    SparsePrune,
    SparseReLU,
    SparseSigmoid,
    SparseToDense,
    cat,
    kernel_map,
)


def test_cat_union_with_zero_fill():
    a = random_sparse((6, 5), 2, seed=1)
    b = random_sparse((6, 5), 3, seed=2)
    out = SparseCat()(a, b)
    assert torch.equal(site_mask(out), site_mask(a) | site_mask(b))
    assert torch.equal(out.to_dense(), torch.cat([a.to_dense(), b.to_dense()], 1))
    (out.feats.sum()).backward()
    assert torch.equal(a.feats.grad, torch.ones_like(a.feats))


def test_cat_same_sites_shares_cache_and_rejects_mismatch():
    a = random_sparse((6, 5, 4), 2)
    out = cat([a, a.with_feats(a.feats * 2)])
    assert out.cache is a.cache and out.num_channels == 4
    with pytest.raises(ValueError, match="share"):
        cat([a, random_sparse((6, 5, 5), 2)])


def test_prune_keeps_masked_sites():
    x = random_sparse((6, 5, 4), 2)
    head = SparseSigmoid()(x.with_feats(x.feats[:, :1]))
    keep = head.feats[:, 0] >= 0.5
    out = SparsePrune()(x, keep)
    assert torch.equal(out.coords, x.coords[keep]) and torch.equal(out.feats, x.feats[keep])
    assert torch.equal(out.to_dense(), x.to_dense() * site_mask(out).unsqueeze(1))
    with pytest.raises(ValueError, match="mask has shape"):
        SparsePrune()(x, keep[:-1])
    assert SparsePrune()(x, torch.ones_like(keep)).cache is x.cache


def test_batch_norm_uses_active_sites_only():
    x = random_sparse((6, 5, 4), 3)
    bn = SparseBatchNorm(3).double()
    out = bn(x)
    mean, var = x.feats.mean(0), x.feats.var(0, unbiased=False)
    torch.testing.assert_close(out.feats, (x.feats - mean) / torch.sqrt(var + bn.eps))
    empty = random_sparse((6, 5, 4), 3, "empty")
    assert bn(empty).num_sites == 0


def test_activations_and_to_dense():
    x = random_sparse((6, 5), 2)
    assert torch.equal(SparseReLU()(x).feats, torch.relu(x.feats))
    assert torch.equal(SparseLeakyReLU(0.2)(x).feats, torch.nn.functional.leaky_relu(x.feats, 0.2))
    assert torch.equal(SparseActivation(torch.nn.GELU())(x).feats, torch.nn.GELU()(x.feats))
    assert torch.equal(SparseToDense()(x), x.to_dense())
    with pytest.raises(ValueError, match="SparseTensor"):
        SparseReLU()(x.feats)


def test_kernel_map_cache_is_reused():
    x = random_sparse((8, 8, 8), 4)
    conv1, conv2 = SparseConv(4, 4, 3), SparseConv(4, 4, 3)
    h = SparseReLU()(conv1(x.with_feats(x.feats.float())))
    assert conv2.kernel_map(h) is conv1.kernel_map(x)
    assert kernel_map(x, "submanifold", 3) is conv1.kernel_map(x)
    assert kernel_map(x, "submanifold", 5) is not conv1.kernel_map(x)
    down, pool = SparseConv(4, 4, 2, stride=2).double(), SparseMaxPool(2)
    assert down.kernel_map(x) is pool.kernel_map(x)
    coarse = down(x)
    assert coarse.cache is pool(x).cache and coarse.stride == (2, 2, 2)
    up = SparseConvTranspose(4, 4, 2, stride=2).double()(coarse)
    assert up.stride == (1, 1, 1) and up.spatial_shape == x.spatial_shape


def test_layer_input_validation():
    x = random_sparse((6, 5), 2)
    with pytest.raises(ValueError, match="channels"):
        SparseConv(3, 4, 3, ndim=2)(x)
    with pytest.raises(ValueError, match="submanifold"):
        SparseConv(2, 4, 3, stride=2, submanifold=True)
    with pytest.raises(ValueError, match="kernel_size"):
        SparseConv(2, 4, (3, 3), ndim=3)
