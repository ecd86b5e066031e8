"""DistributedDataParallel: 2 gloo processes give the gradient of one process on the same
global batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from blockrecon.models import build_unrolled
from blockrecon.train import SimulatedRadialPairs, accumulate_gradients

CONFIG = {"regularizer": {"width": 4, "n_layers": 2}, "n_unrolls": 2, "patch_size": 4}
GLOBAL_BATCH = 4


def _pairs(indices):
    data = SimulatedRadialPairs(
        GLOBAL_BATCH, image_size=8, n_spokes=24, n_coils=2, normalize=True, cache=False
    )
    return [data[i] for i in indices]


def _gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def _worker(rank: int, world_size: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        model = build_unrolled(CONFIG)
        shard = GLOBAL_BATCH // world_size
        accumulate_gradients(
            DistributedDataParallel(model), _pairs(range(rank * shard, (rank + 1) * shard))
        )
        if rank == 0:
            torch.save(_gradients(model), out)
    finally:
        dist.destroy_process_group()


def test_two_process_gradient_equals_single_process_global_batch(tmp_path):
    out = tmp_path / "grads.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    distributed = torch.load(out, weights_only=True)
    torch.manual_seed(0)
    model = build_unrolled(CONFIG)
    accumulate_gradients(model, _pairs(range(GLOBAL_BATCH)))
    single = _gradients(model)
    assert distributed.keys() == single.keys()
    for name, grad in single.items():
        assert grad.norm() > 0, name
        error = ((distributed[name] - grad).norm() / grad.norm()).item()
        assert error <= 1e-6, (name, error)
