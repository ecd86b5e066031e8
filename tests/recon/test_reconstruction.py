import pytest
import torch

from blockrecon.physics import max_eigenvalue
from blockrecon.physics.dcf import pipe_menon_dcf
from blockrecon.physics.sense import Sense
from blockrecon.physics.simulate import simulate_acquisition
from blockrecon.physics.trajectory import radial_3d
from blockrecon.recon import (
    cg_sense,
    conjugate_gradient,
    grid_recon,
    l1_wavelet,
    nrmse,
    ssim,
)
from blockrecon.recon.l1_wavelet import WaveletSoftThreshold

N = 32
SHAPE = (N, N, N)


def _radial_case(n_spokes):
    coord = radial_3d(n_spokes, N)
    acquisition = simulate_acquisition(coord, SHAPE, n_coils=4)  # noise-free, from a 64^3 grid
    return acquisition, pipe_menon_dcf(coord, SHAPE, progress=False)


@pytest.fixture(scope="module")
def moderate():
    """400 spokes: 4x below angular Nyquist (pi/2 * 32^2 = 1608 spokes)."""
    return _radial_case(400)


@pytest.fixture(scope="module")
def high():
    """100 spokes: 16x below angular Nyquist."""
    return _radial_case(100)


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


def test_l1_wavelet_beats_cg_sense_at_high_undersampling(high):
    acq, dcf = high
    sense = cg_sense(acq.kspace, acq.coord, acq.maps, weights=dcf, n_iter=20, progress=False)
    sparse = l1_wavelet(acq.kspace, acq.coord, acq.maps, lamda=1e-3, n_iter=30, weights=dcf,
                        progress=False)
    assert sparse.shape == SHAPE and sparse.dtype == torch.complex64
    assert nrmse(sparse, acq.image) < 0.9 * nrmse(sense, acq.image)
    assert ssim(sparse, acq.image) > ssim(sense, acq.image) + 0.01


def test_conjugate_gradient_solves_hermitian_system_and_stops_at_tolerance():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=generator, dtype=torch.complex128)
    matrix = a.conj().T @ a + 0.5 * torch.eye(20, dtype=torch.complex128)
    rhs = torch.randn(20, generator=generator, dtype=torch.complex128)
    solution = conjugate_gradient(lambda x: matrix @ x, rhs, n_iter=60, progress=False)
    assert torch.allclose(solution, torch.linalg.solve(matrix, rhs), atol=1e-8)
    calls = []

    def counted(x):
        calls.append(1)
        return matrix @ x

    loose = conjugate_gradient(counted, rhs, n_iter=60, tol=1e-2, progress=False)
    assert (matrix @ loose - rhs).norm() <= 1e-2 * rhs.norm()
    assert len(calls) < 20


def test_tikhonov_weight_matches_explicit_solution_in_2d():
    generator = torch.Generator().manual_seed(1)
    maps = torch.randn(3, 8, 8, generator=generator, dtype=torch.complex64)
    coord = torch.rand(40, 2, generator=generator) * 8 - 4
    kspace = torch.randn(3, 40, generator=generator, dtype=torch.complex64)
    sense, pair = Sense(maps, coord), Sense(maps, coord, normal="pair")
    basis = torch.eye(64, dtype=torch.complex64).reshape(64, 8, 8)
    normal = torch.stack([pair.normal(b).flatten() for b in basis], dim=1)
    lamda = 0.3
    expected = torch.linalg.solve(normal + lamda * torch.eye(64), sense.adjoint(kspace).flatten())
    result = cg_sense(kspace, coord, maps, n_iter=200, lamda=lamda, tol=1e-7, progress=False)
    assert (result.flatten() - expected).norm() / expected.norm() < 1e-3
    eigenvalue = max_eigenvalue(sense, n_iter=100)
    assert eigenvalue == pytest.approx(torch.linalg.eigvalsh(normal).max().item(), rel=2e-2)


def test_wavelet_soft_threshold():
    prox = WaveletSoftThreshold((16, 16, 16))
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(16, 16, 16, generator=generator, dtype=torch.complex64)
    assert torch.allclose(prox(x, 0.0), x, atol=1e-5)
    assert prox(x, 1e6).abs().max() < 1e-6
    shrunk = prox(x, 0.5)
    coefficients = torch.from_numpy(prox.transform(shrunk.numpy()))
    original = torch.from_numpy(prox.transform(x.numpy()))
    assert coefficients.abs().sum() < original.abs().sum()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, d: cg_sense(a.kspace[:2], a.coord, a.maps, progress=False), "kspace"),
        (lambda a, d: cg_sense(a.kspace[..., :5], a.coord, a.maps, progress=False), "kspace"),
        (lambda a, d: cg_sense(a.kspace[0], a.coord, a.maps[:1], progress=False),
         "kspace must have shape"),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, n_iter=0), "n_iter"),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, lamda=-1.0), "lamda"),
        (lambda a, d: cg_sense(a.kspace, a.coord, a.maps, weights=-d), "non-negative"),
        (lambda a, d: grid_recon(a.kspace, a.coord, a.maps, dcf=d[:5]), "dcf"),
        (lambda a, d: grid_recon(a.kspace, a.coord, a.maps.abs(), dcf=d), "complex"),
        (lambda a, d: l1_wavelet(a.kspace, a.coord, a.maps, lamda=1e-3, wavelet="nope"),
         "wavelet"),
        (lambda a, d: l1_wavelet(a.kspace, a.coord, a.maps, lamda=float("nan")), "lamda"),
        (lambda a, d: l1_wavelet(a.kspace, a.coord * 4, a.maps, lamda=1e-3), "must lie"),
    ],
)
def test_bad_input_raises_value_error(high, call, message):
    acq, dcf = high
    with pytest.raises(ValueError, match=message):
        call(acq, dcf)
