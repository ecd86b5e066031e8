"""Measuring memory: peak live tensor bytes, peak RSS, CUDA peak; planning a patch size.

Three honest measurements, each for what a machine supports:

:func:`saved_bytes`
    Peak bytes of live tensors created while ``fn`` runs (forward and backward), counted once per
    storage. A ``TorchDispatchMode`` sees every operator output, including those recomputed
    inside non-reentrant checkpoints during backward (whose saved tensors are hidden from an
    outer ``saved_tensors_hooks``); each new storage is counted from its creation until it is
    freed (a finalizer on the storage). Views and in-place results share their input's storage
    and are not counted again; tensors that existed before ``fn`` (inputs, parameters) are not
    counted. The figure is the activation memory autograd holds plus transients and gradients;
    it is deterministic, works on CPU, and on the meta device without allocating anything.
:func:`peak_rss`
    Resident-set high-water mark of a fresh process, after a warm-up run and a reset of the mark
    (``/proc/self/clear_refs``), with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed large
    buffers go back to the system. Linux only.
:func:`cuda_peak_bytes`
    ``torch.cuda.max_memory_allocated`` above the allocation before ``fn``; None without CUDA.

:func:`estimate_full_backprop_bytes` and :func:`suggest_patch_size` run models on the meta
device, so they work for volumes that would never fit in memory. :func:`check_memory` refuses
work that cannot fit in the available memory before anything is allocated (with rough sizes
such as :func:`simulation_bytes`).
"""

from __future__ import annotations

import copy
import gc
import math
import multiprocessing
import os
import subprocess
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from blockrecon.checks import check_positive

MMAP_THRESHOLD = "65536"

GIB = 2**30

#: Bytes per complex64 / float32 value.
COMPLEX_BYTES, REAL_BYTES = 8, 4


class LiveTensorBytes(TorchDispatchMode):
    """Dispatch mode tracking live bytes of storages created by operators (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage()._cdata
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in inputs or key in self._sizes:
                continue
            self._sizes[key] = storage.nbytes()
            self.live += self._sizes[key]
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)
        return out


def saved_bytes(fn: Callable[[], object]) -> int:
    """Peak live tensor bytes while ``fn()`` runs (typically a forward and backward pass).

    See the module docstring for what is counted. ``fn`` may use CPU, CUDA or meta tensors.
    """
    if not callable(fn):
        raise ValueError(f"saved_bytes expects a callable, got {type(fn).__name__}")
    gc.collect()
    tracker = LiveTensorBytes()
    with tracker:
        fn()
    return tracker.peak


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device."""
    return copy.deepcopy(model).to(torch.device("meta"))


def estimate_full_backprop_bytes(
    model: nn.Module,
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    input_requires_grad: bool = True,
) -> int:
    """Peak live bytes of ``model(x).sum().backward()`` for ``x`` of ``shape``, on meta.

    Nothing is allocated: a meta copy of the model runs on a meta input, so sizes that could
    never run are fine. Real ``(N, C, *spatial)`` shapes; complex images count as 2 channels.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape must be (N, C, *spatial) with positive sizes, got {shape}")
    meta_model = meta_copy(model)
    x = torch.empty(shape, dtype=dtype, device="meta", requires_grad=input_requires_grad)
    return saved_bytes(lambda: meta_model(x).sum().backward())


def blockwise_step_bytes(
    model: nn.Module,
    volume_shape: Sequence[int],
    patch_size,
    channels: int = 2,
    dtype: torch.dtype = torch.float32,
    **kwargs,
) -> int:
    """Peak live bytes of a block-wise forward+backward of ``model`` on meta.

    ``kwargs`` go to :class:`blockrecon.blockwise.BlockwiseRegularizer`; padding defaults to
    ``"zeros"`` (reflect padding has no meta kernel for every size) and makes no difference
    to the count.
    """
    from blockrecon.blockwise import BlockwiseRegularizer

    kwargs.setdefault("padding", "zeros")
    reg = BlockwiseRegularizer(meta_copy(model), patch_size, **kwargs)
    x = torch.empty((1, channels, *volume_shape), dtype=dtype, device="meta", requires_grad=True)
    return saved_bytes(lambda: reg(x).sum().backward())


def suggest_patch_size(
    model: nn.Module,
    volume_shape: Sequence[int],
    budget_bytes: int,
    channels: int = 2,
    dtype: torch.dtype = torch.float32,
    min_core: int = 8,
    **kwargs,
) -> tuple[int, ...]:
    """Largest isotropic core (clipped to the volume) whose block-wise step fits ``budget_bytes``.

    The count is :func:`blockwise_step_bytes` on the meta device (``kwargs`` go there): the
    activations of one patch plus the volume-sized states of the step. Candidate cores are the
    multiples of the model's stride from ``min_core`` up to the volume, searched by bisection
    (the count grows with the core).

    Raises:
        ValueError: even the smallest candidate core does not fit the budget.
    """
    from blockrecon.blockwise import tiling_contract

    stride = tiling_contract(model).stride
    shape = tuple(int(s) for s in volume_shape)
    check_positive(budget_bytes, "budget_bytes")
    if not shape or min(shape) < stride:
        raise ValueError(f"volume_shape {shape} must be at least the stride {stride}")
    first = max(stride, -(-min_core // stride) * stride)
    candidates = list(
        dict.fromkeys(
            tuple(min(c, s - s % stride) for s in shape)
            for c in range(first, max(shape) + stride, stride)
        )
    )

    def need(core: tuple[int, ...]) -> int:
        return blockwise_step_bytes(model, shape, core, channels, dtype, **kwargs)

    lo, hi = 0, len(candidates) - 1  # answer index in [lo, hi]; candidates[lo] unchecked
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(candidates[mid]) <= budget_bytes else (lo, mid - 1)
    smallest = need(candidates[lo]) if lo == 0 else 0
    if smallest > budget_bytes:
        raise ValueError(
            f"budget of {budget_bytes} bytes is below the {smallest} bytes the "
            f"smallest core {candidates[0]} needs for a volume of {shape}"
        )
    return candidates[lo]


@dataclass(frozen=True)
class RssPeak:
    """Resident-set sizes in bytes: ``peak`` high-water mark, ``baseline`` before the run."""

    peak: int
    baseline: int

    @property
    def increase(self) -> int:
        """Bytes the measured run added on top of the baseline."""
        return self.peak - self.baseline


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"/proc/self/status has no {field}")


def reset_rss_high_water_mark() -> int | None:
    """Reset this process's resident high-water mark (Linux ``/proc/self/clear_refs``).

    Returns:
        the current resident set size in bytes, or ``None`` where the platform cannot reset it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return _status_bytes("VmRSS")
    except (OSError, ValueError):
        return None


def rss_high_water_mark() -> int:
    """This process's resident high-water mark (``VmHWM``) in bytes."""
    return _status_bytes("VmHWM")


def _rss_child(fn: Callable, args: tuple, queue) -> None:
    torch.set_num_threads(int(os.environ.get("BLOCKRECON_RSS_THREADS", torch.get_num_threads())))
    fn(*args)  # warm-up: first-call buffers of oneDNN, allocator pools
    gc.collect()
    baseline = reset_rss_high_water_mark()
    fn(*args)
    queue.put((rss_high_water_mark(), baseline))


def peak_rss(target: Callable | Sequence[str], *args) -> RssPeak:
    """Peak resident memory of ``target`` run in a fresh process.

    Args:
        target: a picklable (module-level) callable, run as ``target(*args)`` twice in a
            spawned process: a warm-up, then a reset of the high-water mark and the measured run;
            or a command line (list of strings), whose whole-process high-water mark is reported
            (baseline 0: no warm-up or reset is possible from outside).

    Returns:
        :class:`RssPeak` in bytes.
    """
    if not os.path.exists("/proc/self/clear_refs"):
        raise ValueError("peak_rss needs Linux /proc (clear_refs, status)")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    if not callable(target):
        cmd = [str(c) for c in target]
        if not cmd:
            raise ValueError("peak_rss needs a callable or a non-empty command")
        proc = subprocess.Popen(cmd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise ValueError(f"command {cmd} failed with exit code {proc.returncode}")
        return RssPeak(usage.ru_maxrss * 1024, 0)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
    try:
        proc = ctx.Process(target=_rss_child, args=(target, args, queue))
        proc.start()
        peak, baseline = queue.get()
        proc.join()
    finally:
        if saved is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    return RssPeak(peak, baseline)


def cuda_peak_bytes(
    fn: Callable[[], object], device: torch.device | str | None = None
) -> int | None:
    """Peak CUDA bytes allocated by ``fn()`` above what was allocated before; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def available_memory_bytes() -> int:
    """Memory new arrays can take now: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the
    free physical pages (``os.sysconf``)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(need_bytes: int, what: str, available: int | None = None) -> None:
    """ValueError saying how much ``what`` needs and how much there is, when ``need_bytes``
    exceed ``available`` (default: :func:`available_memory_bytes`)."""
    available = available_memory_bytes() if available is None else available
    if need_bytes > available:
        raise ValueError(
            f"{what} needs about {need_bytes / GIB:.1f} GiB of memory, only "
            f"{available / GIB:.1f} GiB is available"
        )


def simulation_bytes(
    image_shape: Sequence[int], coils: int, samples: int, oversample: int = 2
) -> int:
    """Rough peak of simulating an acquisition
    (:func:`blockrecon.physics.simulate_acquisition`), from its largest arrays: the phantom,
    the coil maps and their product on the ``oversample``-times finer grid, the NUFFT's 2x
    upsampled grid of one coil image, k-space and trajectory, maps and image on the grid."""
    voxels = math.prod(image_shape)
    fine = oversample ** len(image_shape) * voxels
    complex_values = (1 + 2 * coils + 2 ** len(image_shape)) * fine + (coils + 1) * voxels
    return (complex_values + coils * samples) * COMPLEX_BYTES + 3 * samples * REAL_BYTES
