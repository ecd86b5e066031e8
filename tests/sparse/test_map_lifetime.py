"""Site sets, with their kernel maps and site indexes, are freed as soon as their last tensor
goes: no reference cycle keeps them for Python's cyclic garbage collector (which on the 8x grids
of 3D ULM training held gigabytes of earlier steps' maps)."""

import gc
import weakref

import torch
from sparse_reference import random_sparse

from blockrecon.sparse import SparseConv, SparseConvTranspose, SparseTensor
from blockrecon.sparse.site_index import site_index


def test_site_sets_and_their_maps_are_freed_without_the_cycle_collector():
    torch.manual_seed(0)
    same = SparseConv(2, 2, 3)
    down = SparseConv(2, 2, 2, stride=2)
    up = SparseConvTranspose(2, 2, 2, stride=2)
    x = random_sparse((8, 8, 8), 2, "random", density=0.3, seed=1)
    x = SparseTensor(x.coords, torch.randn(x.num_sites, 2), x.spatial_shape)
    gc.collect()
    gc.disable()
    try:
        coarse = down(same(x))
        fine = up(same(coarse))
        fine.feats.sum().backward()
        caches = [t.cache for t in (x, coarse, fine)]
        watched = [
            weakref.ref(v)
            for cache in caches
            for v in cache.values()
            if not isinstance(v, torch.Tensor)
        ]
        watched.append(weakref.ref(site_index(x, (1,) * 3, (1,) * 3)))
        assert len(watched) >= 4  # maps of all three site sets and an index
        del x, coarse, fine, caches
        assert [ref() for ref in watched] == [None] * len(watched)
    finally:
        gc.enable()
