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
