"""Fixtures shared by the whole test suite (helpers live in ``operator_checks.py``)."""

import errno
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture
def rng() -> torch.Generator:
    """A freshly seeded torch generator (seed 0)."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch) -> Path:
    """A folder in which creating a file fails as on a read-only file system (EROFS), whoever
    runs the tests (permissions do not stop root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).parent == folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    return folder


@pytest.fixture(scope="module")
def small_mbdl_problem():
    """A 10^3, 3-coil radial acquisition, a tiny CG-DC unrolled network (eval mode) and the
    trajectory's Pipe-Menon weights."""
    from blockrecon.dc import ConjugateGradientDC
    from blockrecon.nn import ResNet3d
    from blockrecon.physics import pipe_menon_dcf, radial_3d, simulate_acquisition
    from blockrecon.unrolled import UnrolledNet

    torch.manual_seed(0)
    coord = radial_3d(50, 20, image_size=10)
    acq = simulate_acquisition(coord, (10, 10, 10), n_coils=3, seed=3)
    model = UnrolledNet(
        ResNet3d(width=2, n_layers=2),
        ConjugateGradientDC(n_iter=4),
        2,
        patch_size=None,
        init="adjoint",
    ).eval()
    return acq, model, pipe_menon_dcf(coord, acq.image_shape, progress=False)
