"""Memory of one ULM training step: the meta count of a dense network equals the real count,
the sparse step holds fewer sites, and only dense networks go on the meta device."""

import pytest
import torch
from ulm_cases import CONFIG

from blockrecon.ulm.memory import training_step_memory
from blockrecon.ulm.training import build_model


def test_meta_count_equals_the_real_dense_count(blocks):
    torch.manual_seed(0)
    dense = build_model("dense", CONFIG)
    real = training_step_memory(dense, blocks.inputs[:1], blocks.targets.select([0]))
    meta = training_step_memory(dense, blocks.inputs[:1], blocks.targets.select([0]), meta=True)
    assert real.peak_bytes > 0 and meta == real


def test_sparse_step_holds_fewer_sites_and_stays_off_meta(blocks):
    torch.manual_seed(0)
    sparse = build_model("sparse", CONFIG)
    dense = training_step_memory(build_model("dense", CONFIG), blocks.inputs, blocks.targets)
    step = training_step_memory(sparse, blocks.inputs, blocks.targets)
    assert all(step.sites[s] < dense.sites[s] for s in dense.sites)
    with pytest.raises(ValueError, match="only dense networks"):
        training_step_memory(sparse, blocks.inputs, blocks.targets, meta=True)
