"""Per-site layers acting on features only: batch normalization and activations.

Sites (and their kernel-map cache) pass through unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from blockrecon.sparse.tensor import SparseTensor


def _check_sparse(x) -> SparseTensor:
    if not isinstance(x, SparseTensor):
        raise ValueError(f"expected a SparseTensor, got {type(x).__name__}")
    return x


class SparseBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features (N, C) of the active sites (statistics over active sites
    of the whole batch). A tensor without sites passes through unchanged."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        x = _check_sparse(x)
        if x.num_sites == 0:
            return x
        return x.with_feats(super().forward(x.feats))


class SparseActivation(nn.Module):
    """Apply ``fn`` (callable or nn.Module, elementwise on (N, C) features) to the features."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        if not callable(fn):
            raise ValueError("fn must be callable")
        self.fn = fn

    def forward(self, x: SparseTensor) -> SparseTensor:
        return _check_sparse(x).with_feats(self.fn(x.feats))


class SparseReLU(SparseActivation):
    def __init__(self):
        super().__init__(torch.relu)


class SparseLeakyReLU(SparseActivation):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__(functools.partial(F.leaky_relu, negative_slope=negative_slope))


class SparseSigmoid(SparseActivation):
    def __init__(self):
        super().__init__(torch.sigmoid)
