"""CG-SENSE: beats gridding, matches the explicit Tikhonov solution, names bad input."""

import pytest
import torch
from recon_cases import SHAPE

from blockrecon.physics import max_eigenvalue
from blockrecon.physics.sense import Sense
from blockrecon.recon import cg_sense, grid_recon, nrmse


def test_cg_sense_clearly_beats_gridding(moderate):
    acq, dcf = moderate
    gridded = grid_recon(acq.kspace, acq.coord, acq.maps, dcf=dcf)
    assert gridded.shape == SHAPE and gridded.dtype == torch.complex64
    sense = cg_sense(acq.kspace, acq.coord, acq.maps, weights=dcf, n_iter=20, progress=False)
    assert sense.shape == SHAPE and sense.dtype == torch.complex64
    assert nrmse(sense, acq.image) < 0.5 * nrmse(gridded, acq.image)
    assert nrmse(sense, acq.image) < 0.05
    # Gridding with unit-scaled weights and CG-SENSE are both at the object's scale.
    assert nrmse(gridded, acq.image, normalize=False) < 1.3 * nrmse(gridded, acq.image)
    assert nrmse(sense, acq.image, normalize=False) < 1.1 * nrmse(sense, acq.image)
    unweighted = cg_sense(acq.kspace, acq.coord, acq.maps, n_iter=20, progress=False)
    assert nrmse(unweighted, acq.image) < 0.5 * nrmse(gridded, acq.image)


@pytest.mark.parametrize("preconditioner", [None, "circulant"])
def test_tikhonov_weight_matches_explicit_solution_in_2d(preconditioner):
    generator = torch.Generator().manual_seed(1)
    maps = torch.randn(3, 8, 8, generator=generator, dtype=torch.complex64)
    coord = torch.rand(40, 2, generator=generator) * 8 - 4
    kspace = torch.randn(3, 40, generator=generator, dtype=torch.complex64)
    sense, pair = Sense(maps, coord), Sense(maps, coord, normal="pair")
    basis = torch.eye(64, dtype=torch.complex64).reshape(64, 8, 8)
    normal = torch.stack([pair.normal(b).flatten() for b in basis], dim=1)
    lamda = 0.3
    expected = torch.linalg.solve(normal + lamda * torch.eye(64), sense.adjoint(kspace).flatten())
    result = cg_sense(
        kspace,
        coord,
        maps,
        n_iter=200,
        lamda=lamda,
        tol=1e-7,
        progress=False,
        preconditioner=preconditioner,
    )
    assert (result.flatten() - expected).norm() / expected.norm() < 1e-3
    eigenvalue = max_eigenvalue(sense, n_iter=100)
    assert eigenvalue == pytest.approx(torch.linalg.eigvalsh(normal).max().item(), rel=2e-2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, d: cg_sense(a.kspace[:2], a.coord, a.maps, progress=False), "kspace"),
        (lambda a, d: cg_sense(a.kspace[..., :5], a.coord, a.maps, progress=False), "kspace"),
        (
            lambda a, d: cg_sense(a.kspace[0], a.coord, a.maps[:1], progress=False),
            "kspace must have shape",
        ),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, n_iter=0), "n_iter"),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, lamda=-1.0), "lamda"),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, weights=-d), "non-negative"),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, preconditioner="ilu"), "precondition"),
    ],
)
def test_bad_input_raises_value_error(high, call, message):
    acq, dcf = high
    with pytest.raises(ValueError, match=message):
        call(acq, dcf)
