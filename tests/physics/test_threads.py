"""Parity groups on worker threads: same order, same result, seen by memory tools."""

import threading
import time

import torch
from operator_checks import random_complex, random_coord, relative_error

from blockrecon.memory import saved_bytes
from blockrecon.physics import toeplitz
from blockrecon.physics.sense import Sense
from blockrecon.physics.threads import ordered_map


def test_ordered_map_keeps_order_on_worker_threads():
    def work(item):
        time.sleep(0.02 * (item % 3))  # later items may finish first
        return item, threading.get_ident(), torch.is_grad_enabled()

    results = list(ordered_map(work, range(9), workers=2))
    assert [r[0] for r in results] == list(range(9))
    assert not any(r[2] for r in results)  # no autograd in the workers
    assert threading.get_ident() not in {r[1] for r in results}
    assert list(ordered_map(lambda i: i * i, range(4), workers=1)) == [0, 1, 4, 9]


def _problem(rng):
    shape = (8, 6, 4)
    coord = random_coord((300,), shape, rng)
    return Sense(random_complex((5, *shape), rng), coord), random_complex((2, *shape), rng)


def test_parallel_groups_equal_one_at_a_time(monkeypatch, rng):
    op, x = _problem(rng)
    sequential = op.normal(x)
    monkeypatch.setattr(toeplitz, "WORK_VALUES", 2 * x.numel())  # 2 coils, 8 groups
    monkeypatch.setattr(toeplitz, "worker_count", lambda device: 2)
    calls = []
    monkeypatch.setattr(toeplitz, "ordered_map", lambda *a: calls.append(a[2]) or ordered_map(*a))
    assert relative_error(op.normal(x), sequential) < 1e-6
    assert calls == [2]
    # a memory tool (a dispatch mode) sees only its own thread: the groups then run here
    assert saved_bytes(lambda: op.normal(x)) >= 3 * x.numel() * x.element_size()
    assert calls == [2, 1]
