"""blockrecon.sparse: sparse tensors and exact sparse layers in pure torch (CPU and CUDA).

Each layer equals its dense torch counterpart evaluated at the active sites (inactive inputs
zero); see the layer docstrings for the site rules.
"""

from blockrecon.sparse.conv import SparseConv, SparseConvTranspose, sparse_conv
from blockrecon.sparse.kernel_map import KernelMap, kernel_map
from blockrecon.sparse.pointwise import (
    SparseActivation,
    SparseBatchNorm,
    SparseLeakyReLU,
    SparseReLU,
    SparseSigmoid,
)
from blockrecon.sparse.pool import SparseAvgPool, SparseMaxPool
from blockrecon.sparse.sites import SparseCat, SparsePrune, SparseToDense, cat, prune
from blockrecon.sparse.tensor import SparseTensor

__all__ = [
    "KernelMap",
    "SparseActivation",
    "SparseAvgPool",
    "SparseBatchNorm",
    "SparseCat",
    "SparseConv",
    "SparseConvTranspose",
    "SparseLeakyReLU",
    "SparseMaxPool",
    "SparsePrune",
    "SparseReLU",
    "SparseSigmoid",
    "SparseTensor",
    "SparseToDense",
    "cat",
    "kernel_map",
    "prune",
    "sparse_conv",
]
