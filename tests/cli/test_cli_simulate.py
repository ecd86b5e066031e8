"""``blockrecon simulate --phantom angio`` writes the angiography phantom as the reference."""

from __future__ import annotations

import torch

from blockrecon.cli import main
from blockrecon.io import read_acquisition
from blockrecon.physics import angio_phantom


def test_simulate_angio_writes_a_readable_acquisition_of_the_phantom(tmp_path):
    out = tmp_path / "angio.h5"
    args = ["simulate", "--out", str(out), "--phantom", "angio", "--seed", "3"]
    sizes = ["--shape", "12", "16", "16", "--coils", "2", "--spokes", "40"]
    assert main([*args, *sizes]) == 0
    acq = read_acquisition(out)
    assert acq.image_shape == (12, 16, 16) and acq.sample_shape == (40, 32)
    assert torch.equal(acq.image, angio_phantom((12, 16, 16), seed=3))


def test_simulate_angio_refuses_a_negative_seed_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "angio.h5"
    code = main(["simulate", "--out", str(out), "--phantom", "angio", "--seed", "-1"])
    assert code == 2 and not out.exists()
    assert "seed must be an int >= 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
