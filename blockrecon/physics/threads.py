"""Coarse-grained CPU parallelism: independent pieces of work on single-threaded torch workers.

torch parallelizes each operation over its intra-op threads with a static split and a barrier
at the end, so a call made of many operations waits at every barrier for its slowest thread.
On a machine whose cores are shared with other processes one of them is often descheduled,
and every operation then takes as long as its share on the busiest core. Here instead whole
pieces of work (say, the parities of the Toeplitz normal) are handed out one by one to
``torch.get_num_threads()`` worker threads that each run torch on one thread: a worker on a
busy core simply takes fewer pieces, and there is no barrier inside a piece.

Results come back in the order of the inputs (a bounded window of pieces runs ahead), so that
a caller that adds them up gets the same sum whatever the scheduling.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["ordered_map", "worker_count"]

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, pool)


def worker_count(device: torch.device) -> int:
    """Workers :func:`ordered_map` uses for tensors on ``device``: torch's intra-op thread
    count on the CPU (the user's setting, ``OMP_NUM_THREADS`` or the cores), 1 elsewhere."""
    return torch.get_num_threads() if device.type == "cpu" else 1


def _single_threaded() -> None:
    torch.set_num_threads(1)  # this worker's OpenMP and MKL settings; see _executor


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool of ``workers`` threads (made again after a fork or a new count).

    ``torch.set_num_threads(1)`` in each worker also sets torch's process-wide default for
    threads not yet initialized, so the caller's count is set again once the workers exist.
    """
    global _pool
    with _lock:
        if _pool is None or _pool[:2] != (os.getpid(), workers):
            threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(workers, thread_name_prefix="blockrecon")
            barrier = threading.Barrier(workers)
            for future in [
                pool.submit(lambda: (_single_threaded(), barrier.wait())) for _ in range(workers)
            ]:
                future.result()
            torch.set_num_threads(threads)
            _pool = (os.getpid(), workers, pool)
        return _pool[2]


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn(item)`` for each item, in order; with ``workers > 1`` computed by that many
    single-threaded torch workers, at most ``2 * workers`` pieces ahead of the consumer.

    ``fn`` runs without autograd in the workers; with ``workers <= 1`` everything runs here,
    one piece at a time, with torch's own threads.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = _executor(workers)

    def run(item: T) -> R:
        with torch.no_grad():
            return fn(item)

    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(run, item))
        if len(pending) >= 2 * workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
