"""``blockrecon demo``: progress for every method, plain file names, a figure with colour bar."""

from __future__ import annotations

import io
import sys
import warnings

import pytest
import torch

from blockrecon import demo
from blockrecon.cli import main


class _Terminal(io.StringIO):
    """A captured stream that says it is a terminal, so that progress bars draw on it."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "name, stem",
    [
        (demo.MBDL_NAME, "mbdl_block_wise"),
        ("L1-wavelet CS", "l1_wavelet_cs"),
        ("CG-SENSE", "cg_sense"),
        ("gridding", "gridding"),
    ],
)
def test_file_stem_is_lower_case_words_joined_by_underscores(name, stem):
    assert demo.file_stem(name) == stem


def test_demo_shows_progress_for_every_method_and_warns_nothing(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["demo", "--size", "16", "--coils", "2", "--out", str(tmp_path)]) == 0
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    lines = terminal.getvalue().replace("\r", "\n").splitlines()
    bar = [line for line in lines if line.startswith("methods:")]
    named = {line.rsplit(", ", 1)[-1].rstrip("]") for line in bar}
    assert {"gridding", "CG-SENSE", "L1-wavelet CS", demo.MBDL_NAME} <= named
    assert any(" 4/4 " in line for line in bar)
    stems = {path.name for path in tmp_path.glob("*.nii.gz")}
    assert stems == {
        "reference.nii.gz",
        "gridding.nii.gz",
        "cg_sense.nii.gz",
        "l1_wavelet_cs.nii.gz",
        "mbdl_block_wise.nii.gz",
    }


def test_figure_has_a_colour_bar_for_the_error_maps():
    reference = torch.ones(8, 8, 8, dtype=torch.complex64)
    results = [demo.MethodResult("noisy", reference + 0.1 * torch.randn(8, 8, 8), 0.0, None)]
    figure = demo.demo_figure(reference, results, error_gain=4.0)
    colour_bars = [ax for ax in figure.axes if ax.get_ylabel() == "|x| - |ref|"]
    assert len(figure.axes) == 2 * 6 + 1 and len(colour_bars) == 1
    assert colour_bars[0].get_ylim() == pytest.approx((-0.25, 0.25))  # image range / error_gain
