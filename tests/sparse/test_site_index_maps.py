"""Site lookups (dense table, paged table, hash) and the two submanifold map forms (pairs,
neighbour table) against brute force on small grids, borders included; the convolution through
either form against the dense reference; shared maps against fresh ones."""

import itertools

import pytest
import torch
from sparse_reference import conv_nd, random_sparse
from torch.nn import functional as F

import blockrecon.sparse.site_index as site_index_module
from blockrecon.sparse import SparseConv, SparseTensor, kernel_map, sparse_conv
from blockrecon.sparse.kernel_map import _submanifold_map, make_geometry
from blockrecon.sparse.site_index import LOOKUPS, SiteIndex, site_index

SHAPES = {2: (7, 5), 3: (5, 4, 6), 4: (3, 4, 3, 5)}
PATTERNS = ("random", "border", "single", "empty")


def row_grid(x: SparseTensor) -> torch.Tensor:
    """int64 (B, *spatial): the row of the site at each cell, -1 where none (brute force)."""
    grid = torch.full((x.batch_size, *x.spatial_shape), -1, dtype=torch.int64)
    for row, site in enumerate(x.coords.tolist()):
        grid[tuple(site)] = row
    return grid


def brute_force_pairs(x: SparseTensor, kernel, dilation) -> set[tuple[int, int, int]]:
    """{(offset index, in row, out row)} of a submanifold map: out[y] += W[k] x[y + k*d - left]."""
    grid = row_grid(x)
    left = [d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True)]
    pairs = set()
    for j, k in enumerate(itertools.product(*(range(n) for n in kernel))):
        shift = [kk * d - a for kk, d, a in zip(k, dilation, left, strict=True)]
        for out_row, site in enumerate(x.coords.tolist()):
            moved = [c + s for c, s in zip(site[1:], shift, strict=True)]
            if all(0 <= m < n for m, n in zip(moved, x.spatial_shape, strict=True)):
                in_row = int(grid[(site[0], *moved)])
                if in_row >= 0:
                    pairs.add((j, in_row, out_row))
    return pairs


def map_pairs(kmap) -> set[tuple[int, int, int]]:
    """{(offset index, in row, out row)} listed by a map's entries (identity expanded)."""
    pairs = set()
    for j, in_idx, out_idx in kmap.entries:
        if in_idx is None:
            rows = range(kmap.num_in)
            pairs |= {(j, r, r) for r in rows}
        else:
            pairs |= {(j, i, o) for i, o in zip(in_idx.tolist(), out_idx.tolist(), strict=True)}
    return pairs


@pytest.mark.parametrize("lookup", LOOKUPS)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("ndim", [2, 3, 4])
def test_site_lookup_matches_a_dense_grid_on_every_padded_cell(lookup, pattern, ndim):
    x = random_sparse(SHAPES[ndim], 1, pattern, density=0.4, seed=ndim)
    low, high = (2,) + (1,) * (ndim - 1), (1,) * (ndim - 1) + (2,)
    index = site_index(x, low, high, lookup)
    padded = [n + a + b for n, a, b in zip(x.spatial_shape, low, high, strict=True)]
    cells = torch.arange(x.batch_size * int(torch.tensor(padded).prod()))
    found = index.rows(cells.to(index.padded_keys.dtype)).to(torch.int64)
    expected = torch.full((x.batch_size, *padded), x.num_sites, dtype=torch.int64)
    inner = (slice(None), *(slice(a, a + n) for a, n in zip(low, x.spatial_shape, strict=True)))
    grid = row_grid(x)
    expected[inner] = torch.where(grid >= 0, grid, x.num_sites)
    assert torch.equal(found, expected.reshape(-1))
    assert site_index(x, low, high, lookup) is index  # cached on the sites


@pytest.mark.parametrize("chunk", [3, 7, 2**18])  # 3: fewer queries than deltas
@pytest.mark.parametrize("lookup", LOOKUPS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_neighbour_queries_match_the_dense_grid(lookup, pattern, chunk, monkeypatch):
    """lookup / pairs / neighbour_rows of shifted sites against a brute-force grid, shifts
    reaching the padding on every side (where no site is); queries in blocks of ``chunk``."""
    monkeypatch.setattr(site_index_module, "QUERY_CHUNK", chunk)
    x = random_sparse(SHAPES[3], 2, pattern, density=0.4, seed=7)
    index = site_index(x, (1,) * 3, (2,) * 3, lookup)
    shifts = [(-1, 0, 2), (0, 0, 0), (1, -1, -1), (2, 2, 2), (0, 1, 0)]
    deltas = [index.delta(s) for s in shifts]
    grid = row_grid(x)
    expected = torch.full((len(shifts), x.num_sites), x.num_sites, dtype=torch.int64)
    for j, shift in enumerate(shifts):
        for row, site in enumerate(x.coords.tolist()):
            moved = [c + s for c, s in zip(site[1:], shift, strict=True)]
            if all(0 <= m < n for m, n in zip(moved, x.spatial_shape, strict=True)):
                found = int(grid[(site[0], *moved)])
                expected[j, row] = found if found >= 0 else x.num_sites
    listed = (expected < x.num_sites).nonzero()
    for _ in range(2):  # before and after neighbour_rows fills the dense table
        found = index.lookup(deltas)
        assert found.deltas == tuple(deltas)
        assert torch.equal(found.found, expected < x.num_sites)
        which, sites, rows = index.pairs(found)
        assert torch.equal(which, listed[:, 0]) and torch.equal(sites, listed[:, 1])
        assert torch.equal(rows.to(torch.int64), expected[listed[:, 0], listed[:, 1]])
        assert torch.equal(index.neighbour_rows(deltas).to(torch.int64), expected.T)
        head = index.lookup(deltas[:2])  # rows of a lookup of the leading deltas reused
        assert torch.equal(index.neighbour_rows(deltas, head).to(torch.int64), expected.T)


def test_default_lookup_follows_the_grid_size():
    small = random_sparse((6, 6, 6), 1, density=0.3)
    assert site_index(small, (1,) * 3, (1,) * 3).lookup_kind == "dense"
    coords = torch.tensor([[0, 0, 0, 0], [0, 500, 900, 700], [0, 999, 999, 999]])
    huge = SparseTensor(coords, torch.zeros(3, 1), (1000, 1000, 1000))
    assert site_index(huge, (1,) * 3, (1,) * 3).lookup_kind == "hash"
    coords = torch.tensor([[0, 0, 0, 0], [0, 50, 90, 70], [0, 299, 299, 299]])
    large = SparseTensor(coords, torch.zeros(3, 1), (300, 300, 300))
    assert site_index(large, (1,) * 3, (1,) * 3).lookup_kind == "paged"


def test_site_index_rejects_bad_arguments():
    x = random_sparse((4, 5), 1)
    with pytest.raises(ValueError, match="lookup must be one of"):
        site_index(x, (1, 1), (1, 1), "btree")
    with pytest.raises(ValueError, match="padding"):
        site_index(x, (1,), (1, 1))
    with pytest.raises(ValueError, match="padding"):
        site_index(x, (1, -1), (1, 1))


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize(
    ("ndim", "kernel", "dilation"),
    [
        (2, (3, 3), (1, 1)),
        (3, (3, 3, 3), (1, 1, 1)),
        (3, (3, 1, 5), (2, 1, 1)),
        (4, (1, 3, 3, 3), (1, 1, 1, 1)),
        (4, (3, 1, 1, 1), (1, 1, 1, 1)),
    ],
)
@pytest.mark.parametrize("form", ["pairs", "table"])
def test_submanifold_forms_list_the_brute_force_pairs(pattern, ndim, kernel, dilation, form):
    x = random_sparse(SHAPES[ndim], 1, pattern, density=0.4, seed=1)
    geometry = make_geometry("submanifold", ndim, kernel, dilation=dilation)
    kmap = _submanifold_map(x, geometry, form)
    if form == "table" and x.num_sites:
        assert kmap.neighbours is not None and kmap.neighbours.shape == (
            x.num_sites,
            geometry.volume,
        )
    assert map_pairs(kmap) == brute_force_pairs(x, kernel, dilation)


@pytest.mark.parametrize(
    ("kernel", "dilation"), [((2, 2), (1, 1)), ((2, 4), (3, 1)), ((4, 3), (1, 2))]
)
def test_even_kernels_list_the_brute_force_pairs(kernel, dilation):
    x = random_sparse(SHAPES[2], 1, "random", density=0.5, seed=2)
    kmap = kernel_map(x, "submanifold", kernel, dilation=dilation)
    assert kmap.neighbours is None
    assert map_pairs(kmap) == brute_force_pairs(x, kernel, dilation)
    with pytest.raises(ValueError, match="odd kernels only"):
        _submanifold_map(x, kmap.geometry, "table")


def _conv_through(x, layer, form):
    kmap = _submanifold_map(x, layer.kernel_map(x).geometry, form)
    feats = x.feats.detach().clone().requires_grad_()
    weight = layer.weight.detach().clone().requires_grad_()
    out = sparse_conv(x.with_feats(feats), weight, layer.bias, kmap).feats
    grads = torch.autograd.grad(
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), [feats, weight]
    )
    return out.detach(), *grads


@pytest.mark.parametrize("ndim", [2, 3])
def test_table_and_pairs_forms_equal_the_dense_convolution(ndim):
    torch.manual_seed(0)
    x = random_sparse(SHAPES[ndim], 3, "random", density=0.5, seed=3)
    layer = SparseConv(3, 4, 3, ndim=ndim).double()
    dense_op = F.conv2d if ndim == 2 else F.conv3d
    ref = dense_op(x.to_dense(), layer.dense_weight(), layer.bias, padding="same")
    ref = ref.movedim(1, -1)[tuple(x.coords.unbind(1))]
    results = {form: _conv_through(x, layer, form) for form in ("pairs", "table")}
    for form in results:
        torch.testing.assert_close(results[form][0], ref.detach(), atol=1e-12, rtol=1e-12)
    for a, b in zip(results["pairs"], results["table"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_table_form_weight_gradient_matches_the_dense_reference_in_4d():
    torch.manual_seed(1)
    x = random_sparse(SHAPES[4], 2, "random", density=0.6, seed=4)
    layer = SparseConv(2, 3, (1, 3, 3, 3), ndim=4).double()
    out, _, grad_weight = _conv_through(x, layer, "table")
    weight = layer.dense_weight().detach().requires_grad_()
    dense = conv_nd(x.to_dense().detach(), weight, layer.bias.detach(), same=True)
    dense = dense.movedim(1, -1)[tuple(x.coords.unbind(1))]
    torch.testing.assert_close(out, dense.detach(), atol=1e-12, rtol=1e-12)
    (dense * torch.linspace(-1, 1, dense.numel()).view_as(dense)).sum().backward()
    expected = weight.grad.reshape(3, 2, -1).permute(2, 1, 0)
    torch.testing.assert_close(grad_weight, expected, atol=1e-12, rtol=1e-12)


def test_gradcheck_table_form():
    x = random_sparse((4, 5, 3), 2, "random", density=0.7, seed=5)
    kmap = _submanifold_map(x, make_geometry("submanifold", 3, 3), "table")
    assert kmap.neighbours is not None
    inputs = (
        x.feats.detach().clone().requires_grad_(),
        torch.randn(27, 2, 3, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(
        lambda f, w: sparse_conv(x.with_feats(f), w, None, kmap).feats, inputs
    )


def test_shared_map_gives_the_outputs_and_gradients_of_a_fresh_map():
    torch.manual_seed(2)
    x = random_sparse((9, 8, 7), 4, "random", density=0.3, seed=6, dtype=torch.float32)
    spatial, temporal = SparseConv(4, 4, (1, 3, 3)), SparseConv(4, 4, (3, 1, 1))

    def run(tensor):
        feats = tensor.feats.detach().clone().requires_grad_()
        h = spatial(tensor.with_feats(feats))
        out = temporal(h.with_feats(torch.relu(h.feats)))
        out = spatial(out.with_feats(torch.relu(out.feats)))  # same sites: shared maps
        grads = torch.autograd.grad(out.feats.square().sum(), [feats, spatial.weight])
        return [out.feats.detach(), *grads]

    shared = run(x)
    indexes = [v for v in x.cache.values() if isinstance(v, SiteIndex)]
    assert len(indexes) == 1  # both kernels of reach 1 look up through one index
    fresh = SparseTensor(x.coords.clone(), x.feats.detach().clone(), x.spatial_shape)
    assert fresh.cache is not x.cache
    for a, b in zip(shared, run(fresh), strict=True):
        assert torch.equal(a, b)
    assert spatial.kernel_map(x) is spatial.kernel_map(x.with_feats(x.feats * 2))
