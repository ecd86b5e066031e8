"""Torch <-> NumPy exchange shares memory; optional-package probes; device handling."""

import numpy as np
import pytest
import torch

from blockrecon import backend


def test_to_array_shares_memory():
    t = torch.zeros(3, 4, dtype=torch.complex64)
    a = backend.to_array(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.complex64
    a[1, 2] = 5 + 1j
    assert t[1, 2] == 5 + 1j


def test_to_array_detaches_and_resolves_conj():
    t = torch.tensor([1 + 2j], requires_grad=True)
    assert backend.to_array(t.conj())[0] == 1 - 2j


def test_from_array_shares_memory():
    a = np.zeros((2, 3), dtype=np.float32)
    t = backend.from_array(a)
    t[0, 1] = 7
    assert a[0, 1] == 7
    assert torch.equal(backend.from_array(a[::-1]), torch.from_numpy(a.copy()[::-1].copy()))


def test_probes_and_array_module():
    for probe in (backend.has_cupy, backend.has_finufft, backend.has_cufinufft):
        assert isinstance(probe(), bool)
    assert not backend.has_cupy() or torch.cuda.is_available()
    assert backend.get_array_module(torch.zeros(1)) is np
    with pytest.raises(ValueError, match="no array module for device type 'meta'"):
        backend.get_array_module(torch.zeros(1, device="meta"))


def test_resolve_device():
    assert backend.resolve_device(None) == torch.device("cpu")
    assert backend.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="invalid device"):
        backend.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            backend.resolve_device("cuda")
