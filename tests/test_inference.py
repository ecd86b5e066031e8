"""Inference: a model gets its data as its metadata says, E^H W y is computed once, and a model
file is read once."""

from __future__ import annotations

import pytest
import torch
from operator_checks import relative_error

from blockrecon.inference import (
    DataContract,
    PatchSizeError,
    load_for_inference,
    reconstruct_with_model,
)
from blockrecon.models import build_unrolled, load_pretrained, save_model
from blockrecon.physics import Sense
from blockrecon.train.data import normalize_pair


def test_density_weighted_model_gets_pipe_menon_weights(small_mbdl_problem):
    acq, model, dcf = small_mbdl_problem
    with torch.no_grad():
        weighted = model(acq.kspace, Sense(acq.maps, acq.coord, weights=dcf))
        plain = model(acq.kspace, Sense(acq.maps, acq.coord))
    extra = DataContract(density_weights=True).to_extra()
    computed = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra)
    given = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra, dcf=dcf)
    unweighted = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, {})
    assert relative_error(computed, weighted) < 1e-5 and relative_error(given, weighted) < 1e-5
    assert relative_error(unweighted, plain) < 1e-5
    assert relative_error(weighted, plain) > 1e-2


def test_contract_keeps_the_model_file_keys():
    both = DataContract(normalized=True, density_weights=True)
    assert both.to_extra() == {
        "data_normalization": "unit_operator_unit_peak",
        "density_weights": "pipe_menon",
    }
    for contract in (
        DataContract(),
        DataContract(normalized=True),
        DataContract(density_weights=True),
        both,
    ):
        assert DataContract.from_extra({"epoch": 3, **contract.to_extra()}) == contract
    assert DataContract.from_extra(load_pretrained()[2]) == DataContract()  # own scale


def test_normalized_inference_equals_the_training_pair_path(small_mbdl_problem):
    """The precomputed right-hand side changes nothing but float rounding."""
    acq, model, dcf = small_mbdl_problem
    pair = normalize_pair(acq.kspace, acq.maps, acq.coord, weights=dcf)
    with torch.no_grad():
        expected = model(pair.kspace, pair.op) / pair.intensity_scale
    extra = DataContract(normalized=True, density_weights=True).to_extra()
    image = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra, dcf=dcf)
    assert relative_error(image, expected) < 1e-5


@pytest.mark.parametrize("contract", [DataContract(), DataContract(True, True)])
def test_one_multi_coil_adjoint_per_reconstruction(small_mbdl_problem, contract, monkeypatch):
    acq, model, dcf = small_mbdl_problem
    calls = []
    adjoint = Sense.adjoint

    def counted(self, kspace):
        calls.append(kspace.shape)
        return adjoint(self, kspace)

    monkeypatch.setattr(Sense, "adjoint", counted)
    reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, contract.to_extra(), dcf=dcf)
    assert calls == [acq.kspace.shape]


@pytest.fixture
def model_file(tmp_path):
    config = {
        "regularizer": {"width": 2, "n_layers": 2},
        "dc": {"kind": "cg", "n_iter": 2},
        "n_unrolls": 1,
        "patch_size": 8,
    }
    path = tmp_path / "model.pt"
    save_model(path, build_unrolled(config), config, DataContract(normalized=True).to_extra())
    return path


def test_model_file_is_read_once_with_overrides(model_file, monkeypatch):
    loads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or load(*a, **k))
    model, config, extra = load_for_inference(
        model_file, image_shape=(16,) * 3, patch_size=4, cg_iterations=5
    )
    assert len(loads) == 1
    assert config["patch_size"] == 4 and config["dc"]["n_iter"] == 5
    assert model.dcs[0].n_iter == 5 and DataContract.from_extra(extra).normalized


def test_patch_that_does_not_fit_is_a_patch_size_error(model_file, tmp_path):
    with pytest.raises(PatchSizeError, match="larger than the volume"):
        load_for_inference(model_file, image_shape=(16,) * 3, patch_size=32)
    config = {
        "regularizer": {"width": 2, "n_layers": 2},
        "dc": {"kind": "gradient"},
        "n_unrolls": 1,
    }
    path = tmp_path / "gradient.pt"
    save_model(path, build_unrolled(config), config)
    with pytest.raises(ValueError, match="CG data-consistency") as error:
        load_for_inference(path, patch_size=4, cg_iterations=3)
    assert not isinstance(error.value, PatchSizeError)
