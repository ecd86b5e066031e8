"""torch.distributed for training: process-group setup from the environment, and helpers.

``torchrun --nproc_per_node=N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``; :func:`setup_distributed` reads them and joins the process group (gloo on
CPU, nccl on CUDA). Without them (or with ``WORLD_SIZE=1``) training runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, GPU ``local_rank``.

    ``owns_group``: this context initialized the process group (and tears it down).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that writes checkpoints and logs."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def setup_distributed(device: str | torch.device = "cpu") -> DistributedContext:
    """Join the process group described by the environment (or the one already joined).

    Args:
        device: the training device type; ``cuda`` selects nccl and GPU ``LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world_size, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size <= 1:
        return DistributedContext()
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} must lie in [0, WORLD_SIZE={world_size})")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistributedContext(rank, world_size, local_rank, owns_group=True)


def is_main_process() -> bool:
    """Whether this process is rank 0: of the joined process group, else of the ``RANK`` that
    torchrun sets (so also before :func:`setup_distributed` and after teardown); True when
    not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def teardown_distributed(context: DistributedContext) -> None:
    """Leave the process group if ``context`` joined it."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def training_device(device: str | torch.device, context: DistributedContext) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for a distributed CUDA run."""
    device = torch.device(device)
    if device.type == "cuda" and context.enabled:
        return torch.device("cuda", context.local_rank)
    return device


def any_rank(flag: bool, context: DistributedContext) -> bool:
    """True on every rank when ``flag`` is true on at least one (a collective call)."""
    if not context.enabled:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(value: float, context: DistributedContext) -> float:
    """The mean of ``value`` over the ranks (a collective call)."""
    if not context.enabled:
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item()) / context.world_size
