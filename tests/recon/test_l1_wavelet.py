"""L1-wavelet CS: beats CG-SENSE at high undersampling; the wavelet soft threshold; bad input."""

import pytest
import torch
from recon_cases import SHAPE

from blockrecon.recon import cg_sense, l1_wavelet, nrmse, ssim
from blockrecon.recon.l1_wavelet import WaveletSoftThreshold


def test_l1_wavelet_beats_cg_sense_at_high_undersampling(high):
    acq, dcf = high
    sense = cg_sense(acq.kspace, acq.coord, acq.maps, weights=dcf, n_iter=20, progress=False)
    sparse = l1_wavelet(
        acq.kspace, acq.coord, acq.maps, lamda=1e-3, n_iter=30, weights=dcf, progress=False
    )
    assert sparse.shape == SHAPE and sparse.dtype == torch.complex64
    assert nrmse(sparse, acq.image) < 0.9 * nrmse(sense, acq.image)
    assert ssim(sparse, acq.image) > ssim(sense, acq.image) + 0.01


@pytest.mark.parametrize("backend", ["finufft", "sigpy"])
def test_l1_wavelet_matches_sigpys_l1_wavelet_recon(high, backend):
    """The same objective (unitary NUFFT, density weights, db4, the same lambda) solved by
    SigPy's ``L1WaveletRecon`` (NUFFT pairs, its own FISTA and power iteration): an
    independent implementation lands on the same image."""
    from sigpy.mri.app import L1WaveletRecon

    acq, dcf = high
    ours = l1_wavelet(
        acq.kspace,
        acq.coord,
        acq.maps,
        lamda=1e-3,
        n_iter=10,
        weights=dcf,
        backend=backend,
        progress=False,
    )
    theirs = L1WaveletRecon(
        acq.kspace.numpy(),
        acq.maps.numpy(),
        1e-3,
        weights=dcf.numpy(),
        coord=acq.coord.numpy(),
        max_iter=10,
        show_pbar=False,
    ).run()
    theirs = torch.from_numpy(theirs).to(torch.complex64)
    assert (ours - theirs).norm() / theirs.norm() < 0.01
    assert (ours - acq.image).norm() / acq.image.norm() > 0.05  # not merely both converged


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
        (lambda a, d: l1_wavelet(a.kspace, a.coord, a.maps, lamda=1e-3, wavelet="nope"), "wavelet"),
        (lambda a, d: l1_wavelet(a.kspace, a.coord, a.maps, lamda=float("nan")), "lamda"),
        (lambda a, d: l1_wavelet(a.kspace, a.coord * 4, a.maps, lamda=1e-3), "must lie"),
    ],
)
def test_bad_input_raises_value_error(high, call, message):
    acq, dcf = high
    with pytest.raises(ValueError, match=message):
        call(acq, dcf)
