"""UnrolledNet: block-wise equals full-volume inside 3 unrolls, for both DC layers."""

from __future__ import annotations

import pytest
import torch

from blockrecon.dc import ConjugateGradientDC, GradientStepDC
from blockrecon.nn import ResNet3d
from blockrecon.physics import Sense, pipe_menon_dcf
from blockrecon.physics.simulate import simulate_acquisition
from blockrecon.physics.trajectory import radial_3d
from blockrecon.recon import cg_sense
from blockrecon.unrolled import UnrolledNet


@pytest.fixture(scope="module")
def radial():
    n = 12
    coord = radial_3d(60, 2 * n, image_size=n)
    acq = simulate_acquisition(coord, (n,) * 3, n_coils=4)
    return acq.kspace, Sense(acq.maps, coord)


def _run(model, kspace, op):
    x = model(kspace, op)
    grads = torch.autograd.grad(x.abs().pow(2).sum(), list(model.parameters()))
    return x.detach(), grads


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "dc", [GradientStepDC(step=0.01), ConjugateGradientDC(n_iter=5)], ids=["gradient-step", "cg"]
)
def test_blockwise_unrolled_equals_full_volume(radial, dc):
    torch.manual_seed(0)
    net = ResNet3d(width=4, n_layers=3)
    full = UnrolledNet(net, dc, 3, patch_size=None, init="adjoint")
    blockwise = UnrolledNet(net, dc, 3, patch_size=(4, 6, 5), init="adjoint")
    x_full, g_full = _run(full, *radial)
    x_blk, g_blk = _run(blockwise, *radial)
    assert x_full.shape == (12, 12, 12)
    assert _rel(x_blk, x_full) < 1e-5
    for a, b in zip(g_blk, g_full, strict=True):
        assert b.norm() > 0 and _rel(a, b) < 1e-4


def test_checkpointed_unrolls_and_independent_weights(radial):
    torch.manual_seed(0)
    model = UnrolledNet(
        ResNet3d(width=2, n_layers=2),
        GradientStepDC(step=0.01),
        2,
        share_weights=False,
        patch_size=6,
        init="adjoint",
    )
    x, grads = _run(model, *radial)
    model.checkpoint_unrolls = True
    x_ck, grads_ck = _run(model, *radial)
    assert torch.equal(x, x_ck)
    for a, b in zip(grads_ck, grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=0)
    assert len(list(model.parameters())) == 2 * len(
        list(model.regularizers[0].parameters()) + list(model.dcs[0].parameters())
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_unrolls": 0}, "n_unrolls"),
        ({"init": "random"}, "init"),
        ({"patch_size": 0}, "patch_size"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    args = {
        "regularizer": ResNet3d(width=2, n_layers=2),
        "dc": GradientStepDC(),
        "n_unrolls": 2,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        model = UnrolledNet(**args)
        model(torch.zeros(1, 4, 8, dtype=torch.complex64), None)


def test_weighted_operator_makes_dc_solve_weighted_least_squares(radial):
    """With ``Sense(weights=W)`` the unrolled net's CG DC (lam -> 0) reaches the density-weighted
    least-squares solution of CG-SENSE with the same weights, not the unweighted one."""
    kspace, op = radial
    coord = op.nufft.coord
    weights = pipe_menon_dcf(coord, op.image_shape, progress=False)
    weighted_op = Sense(op.maps, coord, weights=weights)
    dc = ConjugateGradientDC(lam=1e-7, n_iter=60, learnable=False)
    model = UnrolledNet(ResNet3d(width=2, n_layers=2), dc, 1, patch_size=None, init="zeros")
    with torch.no_grad():
        x = model(kspace, weighted_op)
    weighted = cg_sense(kspace, coord, op.maps, n_iter=60, weights=weights, progress=False)
    plain = cg_sense(kspace, coord, op.maps, n_iter=60, progress=False)
    assert _rel(x, weighted) < 1e-2 < 0.1 < _rel(x, plain)
