"""Memory measurement: exact counting, checkpoint internals, flat block-wise memory."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from blockrecon.memory import (
    GIB,
    available_memory_bytes,
    blockwise_step_bytes,
    check_memory,
    cuda_peak_bytes,
    estimate_full_backprop_bytes,
    peak_rss,
    saved_bytes,
    simulation_bytes,
    suggest_patch_size,
)
from blockrecon.nn import ResNet3d

MIB = 2**20


def test_counts_each_storage_once_and_frees():
    def fn():
        a = torch.ones(1000)  # 4000 bytes
        view = a[:10].view(2, 5)  # same storage: not counted again
        b = a + view.sum()  # 4 (the sum) + 4000 more
        del a, view, b
        c = torch.ones(500)  # after frees: peak stays 8004
        return c

    assert saved_bytes(fn) == 8004


def _outer_hook_bytes(fn) -> int:
    """What a plain outer saved_tensors_hooks sees (one count per storage)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_checkpointed_activations_are_counted():
    net = ResNet3d(width=8, n_layers=3)
    x = torch.randn(1, 2, 16, 16, 16, requires_grad=True)

    def step():
        torch.utils.checkpoint.checkpoint(net, x, use_reentrant=False).sum().backward()

    activation = 8 * 14**3 * 4  # one hidden activation of the first layer
    assert _outer_hook_bytes(step) < activation  # the outer hook misses recomputed tensors
    assert saved_bytes(step) >= 2 * activation


def test_meta_estimate_equals_cpu_measurement():
    net = ResNet3d(width=4, n_layers=3)
    x = torch.randn(1, 2, 12, 10, 11, requires_grad=True)
    measured = saved_bytes(lambda: net(x).sum().backward())
    assert estimate_full_backprop_bytes(net, x.shape) == measured


def _regularizer_bytes(width: int, volume: int, patch: int) -> int:
    return blockwise_step_bytes(ResNet3d(width=width), (volume,) * 3, patch)


def test_blockwise_bytes_stay_flat_when_volume_grows_8x():
    patch = 8
    small, large = _regularizer_bytes(32, 16, patch), _regularizer_bytes(32, 32, patch)
    # same wrapper with a 1-channel net: only the volume-sized states (output and gradients)
    # remain
    states_small, states_large = _regularizer_bytes(1, 16, patch), _regularizer_bytes(1, 32, patch)
    assert states_large >= 3.5 * states_small  # O(volume) states do grow
    assert large - states_large <= 1.05 * (small - states_small)  # patch part does not
    assert small - states_small > 0.5 * MIB  # and is not negligible
    full_small = estimate_full_backprop_bytes(ResNet3d(), (1, 2, 26, 26, 26))
    full_large = estimate_full_backprop_bytes(ResNet3d(), (1, 2, 42, 42, 42))
    assert full_large / full_small > 4 > 2 * large / small


def test_blockwise_bytes_grow_with_patch_volume():
    sizes = [_regularizer_bytes(32, 32, p) for p in (8, 16, 32)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] > 5 * sizes[0]


def test_blockwise_step_at_64_saves_a_fifth_of_full_backprop():
    net = ResNet3d()
    blockwise = blockwise_step_bytes(net, (64, 64, 64), 16)
    full = estimate_full_backprop_bytes(net, (1, 2, 74, 74, 74))
    assert blockwise <= full / 5


def test_suggested_patch_fits_budget_and_next_does_not():
    net, volume, budget = ResNet3d(width=8), (32, 32, 24), 6 * MIB
    core = suggest_patch_size(net, volume, budget)
    assert blockwise_step_bytes(net, volume, core) <= budget
    bigger = tuple(min(c + 1, s) for c, s in zip(core, volume, strict=True))
    assert bigger != core and blockwise_step_bytes(net, volume, bigger) > budget
    with pytest.raises(ValueError, match="budget"):
        suggest_patch_size(net, volume, 1000)


def _allocate_and_touch(n_bytes: int) -> None:
    torch.ones(n_bytes // 4).sum()


def test_peak_rss_sees_allocation_in_fresh_process():
    rss = peak_rss(_allocate_and_touch, 64 * MIB)
    assert 60 * MIB <= rss.increase <= 100 * MIB
    cmd = peak_rss([sys.executable, "-c", "b = bytearray(48 * 2**20); b[::4096] = b'x' * 12288"])
    assert cmd.peak >= 48 * MIB


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")
def test_cuda_peak_is_none_without_cuda():
    assert cuda_peak_bytes(lambda: None) is None


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: saved_bytes(3), "callable"),
        (lambda: estimate_full_backprop_bytes(ResNet3d(), (2,)), "shape"),
        (lambda: peak_rss([]), "command"),
        (lambda: suggest_patch_size(ResNet3d(), (32, 32, 32), 0), "budget_bytes"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_available_memory_is_positive_and_below_the_physical_memory():
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_memory_bytes() <= physical


def test_check_memory_says_what_needs_how_much_and_what_there_is():
    check_memory(GIB, "a small job", available=GIB)
    with pytest.raises(
        ValueError,
        match=r"^a big job needs about 3\.0 GiB of memory, only "
        r"1\.5 GiB is available$",
    ):
        check_memory(3 * GIB, "a big job", available=3 * GIB // 2)


def test_simulation_bytes_count_the_coil_images_on_the_finer_grid():
    """Phantom, maps and their product per coil on the 2x grid dominate: 8x the voxels each."""
    small, more_coils = simulation_bytes((32,) * 3, 4, 1000), simulation_bytes((32,) * 3, 8, 1000)
    assert more_coils - small >= 4 * 2 * 8 * 32**3 * 8  # 4 more coils, maps + product, 2x grid
    assert simulation_bytes((2048,) * 3, 8, 10**9) > 2**40  # terabytes: refused anywhere
