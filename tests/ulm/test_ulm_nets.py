"""ULM networks: shapes, sparse == dense on a fully active input (outputs and gradients),
pruning between upsampling stages, input sparsifiers."""

import pytest
import torch

from blockrecon.sparse import SparseTensor
from blockrecon.sparse.tensor import decode_keys, linear_keys
from blockrecon.ulm.nets import DenseUlmNet, SparseUlmNet, UlmNetConfig
from blockrecon.ulm.nets.layers import FactorizedConv, PointwiseConv, Pool, Upsample

GRIDS = {2: (16, 4, 8), 3: (16, 4, 4, 4)}


def _config(d):
    return UlmNetConfig(spatial_dims=d, channels=(3, 4, 5), fine_channels=3)


def _pair(d, prune):
    torch.manual_seed(d)
    dense = DenseUlmNet(_config(d)).double()
    sparse = SparseUlmNet(_config(d), prune=prune).double()
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


@pytest.mark.parametrize("d", [2, 3])
def test_dense_output_shapes(d):
    grid = GRIDS[d]
    out = DenseUlmNet(_config(d))(torch.randn(2, 2, *grid))
    assert sorted(out) == [1, 2, 4, 8]
    for scale, logits in out.items():
        assert logits.shape == (2, grid[0], *(scale * s for s in grid[1:]))


def test_sparse_without_pruning_equals_dense():
    """Whole network in 2D+t (3D+t: layer by layer below; its 8x grid is too big for a test)."""
    dense, sparse = _pair(2, prune=False)
    grid = (16, 4, 4)
    x = torch.randn(1, 2, *grid, dtype=torch.float64)
    full = SparseTensor.from_dense(x, mask=torch.ones(1, *grid, dtype=torch.bool))
    out_d, out_s = dense(x), sparse(full)
    for scale in out_d:
        assert out_s[scale].spatial_shape == out_d[scale].shape[1:]
        torch.testing.assert_close(
            out_s[scale].to_dense()[:, 0], out_d[scale], rtol=1e-10, atol=1e-10
        )
    weights = {s: torch.randn_like(v) for s, v in out_d.items()}
    sum(((out_d[s] * w).sum() for s, w in weights.items())).backward()
    sum(((out_s[s].to_dense()[:, 0] * w).sum() for s, w in weights.items())).backward()
    for (name, pd), ps in zip(dense.named_parameters(), sparse.parameters(), strict=True):
        torch.testing.assert_close(ps.grad, pd.grad, rtol=1e-9, atol=1e-10, msg=name)


def test_layers_sparse_equal_dense_in_3d_plus_time():
    torch.manual_seed(0)
    grid = (8, 4, 4, 4)
    x = torch.randn(1, 3, *grid, dtype=torch.float64)
    full = SparseTensor.from_dense(x, mask=torch.ones(1, *grid, dtype=torch.bool))
    conv = FactorizedConv(3, 2, 3).double()
    pool = Pool(4, 2, 3)
    up = Upsample(3, 2, 4, 2, 3).double()
    fine_up = Upsample(3, 2, 1, 2, 3).double()
    head = PointwiseConv(3, 1, 3).double()
    coarse = pool.forward_dense(x)
    coarse_sparse = pool.forward_sparse(full)
    pairs = [
        (conv.forward_dense(x), conv.forward_sparse(full)),
        (coarse, coarse_sparse),
        (up.forward_dense(coarse), up.forward_sparse(coarse_sparse, target=full)),
        (fine_up.forward_dense(x), fine_up.forward_sparse(full)),
        (head.forward_dense(x), head.forward_sparse(full)),
    ]
    for dense, sparse in pairs:
        torch.testing.assert_close(sparse.to_dense(), dense, rtol=1e-10, atol=1e-10)


def test_pruning_keeps_confident_sites_and_their_children():
    _, sparse = _pair(2, prune=True)
    with torch.no_grad():
        sparse.heads[0].conv.bias.zero_()  # about half the coarse sites above 0.5
    x = torch.randn(2, 2, *GRIDS[2], dtype=torch.float64)
    inp = SparseTensor.from_dense(x, threshold=1.0)
    out = sparse(inp)
    logits = out[1].feats[:, 0]
    kept = int((logits > 0).sum())
    assert 0 < kept < inp.num_sites
    assert out[1].num_sites == inp.num_sites
    # each kept coarse site has 4 children at scale 2; the per-item maximum is kept if needed
    assert kept * 4 <= out[2].num_sites <= (kept + 2) * 4
    assert out[2].num_sites < 4 * inp.num_sites
    for scale in (2, 4, 8):
        assert set(out[scale].coords[:, 0].tolist()) == {0, 1}  # no item emptied


def test_pruning_never_empties_a_batch_item():
    _, sparse = _pair(2, prune=True)
    with torch.no_grad():
        for head in sparse.heads:
            head.conv.bias.fill_(-1e3)  # nothing above 0.5
    x = torch.randn(2, 2, *GRIDS[2], dtype=torch.float64)
    out = sparse(SparseTensor.from_dense(x, threshold=0.5))
    # one site (the maximum) per item survives each head: 4 children per item per stage
    assert [out[s].num_sites for s in (2, 4, 8)] == [2 * 4] * 3


def test_bad_inputs_raise():
    net = DenseUlmNet(_config(2))
    with pytest.raises(ValueError, match="multiple of 16"):
        net(torch.randn(1, 2, 8, 4, 4))
    with pytest.raises(ValueError, match="2 channels"):
        net(torch.randn(1, 3, 16, 4, 4))
    with pytest.raises(ValueError, match="SparseTensor"):
        SparseUlmNet(_config(2))(torch.randn(1, 2, 16, 4, 4))
    with pytest.raises(ValueError, match="spatial_dims"):
        UlmNetConfig(spatial_dims=4)


def test_pruning_keeps_the_given_keys():
    _, sparse = _pair(2, prune=True)
    with torch.no_grad():
        for head in sparse.heads:
            head.conv.bias.fill_(-1e3)  # nothing above 0.5: only the given keys and the maxima
    x = torch.randn(2, 2, *GRIDS[2], dtype=torch.float64)
    inp = SparseTensor.from_dense(x, threshold=0.5)
    chosen = inp.keys()[::5].contiguous()
    keep = {1: chosen}
    for scale in (2, 4):  # one child of each chosen site at every finer scale
        coords = decode_keys(keep[scale // 2], (16, 4 * scale // 2, 8 * scale // 2))
        coords[:, 2:] *= 2
        keep[scale] = linear_keys(coords, (16, 4 * scale, 8 * scale)).sort().values
    out = sparse(inp, keep)
    for scale in (2, 4, 8):
        parents = set(keep[scale // 2].tolist())
        sites = out[scale].coords.clone()
        sites[:, 2:] //= 2
        held = set(linear_keys(sites, (16, 4 * scale // 2, 8 * scale // 2)).tolist())
        assert parents <= held, scale  # every kept key's children reach the next scale
        assert len(held) <= len(parents) + 2  # plus at most the per-item maxima
