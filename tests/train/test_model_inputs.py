"""A trained model gets its data as its metadata says: intensity normalization, density weights."""

from __future__ import annotations

import pytest
import torch
from operator_checks import relative_error

from blockrecon.inference import DataContract, reconstruct_with_model
from blockrecon.models import load_model
from blockrecon.physics import max_eigenvalue, pipe_menon_dcf
from blockrecon.train import SimulatedRadialPairs, fit
from blockrecon.train.data import normalize_pair
from blockrecon.train.loop import MODEL_NAME


def test_normalized_weighted_pair_has_unit_operator_and_returns_the_data_scale(small_mbdl_problem):
    acq, model, dcf = small_mbdl_problem
    pair = normalize_pair(acq.kspace * 7.0, acq.maps, acq.coord, acq.image, weights=dcf)
    assert pair.op.weights is not None
    # the normalization's 10 power iterations land about 5% low on this flat spectrum
    assert max_eigenvalue(pair.op, n_iter=30) == pytest.approx(1.0, rel=0.1)
    extra = DataContract(normalized=True, density_weights=True).to_extra()
    x1 = reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra, dcf=dcf)
    x7 = reconstruct_with_model(model, acq.kspace * 7.0, acq.maps, acq.coord, extra, dcf=dcf)
    assert relative_error(x7, 7.0 * x1) < 1e-4


def test_training_on_weighted_pairs_records_it_for_reconstruction(tmp_path):
    pairs = SimulatedRadialPairs(
        2, image_size=8, n_spokes=30, n_coils=2, normalize=True, density_weights=True
    )
    expected = pipe_menon_dcf(pairs.coord, (8,) * 3, progress=False)
    assert torch.equal(pairs[0].op.weights, expected)
    config = {"regularizer": {"width": 2, "n_layers": 2}, "n_unrolls": 1, "patch_size": 4}
    fit(config, pairs, tmp_path / "run", epochs=1, progress=False)
    extra = load_model(tmp_path / "run" / MODEL_NAME).extra
    assert DataContract.from_extra(extra) == DataContract(normalized=True, density_weights=True)
    plain = SimulatedRadialPairs(1, image_size=8, n_spokes=30, n_coils=2, normalize=True)
    fit(config, plain, tmp_path / "plain", epochs=1, progress=False)
    plain_extra = load_model(tmp_path / "plain" / MODEL_NAME).extra
    assert not DataContract.from_extra(plain_extra).density_weights
