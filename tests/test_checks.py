"""blockrecon.checks: the shared argument checks and their argparse parsers."""

import argparse

import numpy as np
import pytest

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.cli.options import non_negative_int, positive_float, positive_int


@pytest.mark.parametrize("value", [1, np.int64(3)])
def test_positive_int_returns_an_int(value):
    assert check_positive_int(value, "n") == int(value)
    assert type(check_positive_int(value, "n")) is int


def test_zero_passes_only_when_allowed():
    assert check_positive_int(0, "n", allow_zero=True) == 0
    assert check_positive(0, "x", allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        check_positive_int(0, "n")
    with pytest.raises(ValueError, match="x must be a positive finite number, got 0"):
        check_positive(0, "x")


@pytest.mark.parametrize("value", [True, 2.0, -1, "3"])
def test_bad_integers_are_named(value):
    with pytest.raises(ValueError, match="n_iter must be a positive integer"):
        check_positive_int(value, "n_iter")


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), -1e-3, "1"])
def test_bad_numbers_are_named(value):
    with pytest.raises(ValueError, match="lamda must be a non-negative finite number"):
        check_positive(value, "lamda", allow_zero=True)


def test_argparse_types():
    assert positive_int("4") == 4 and positive_float("0.5") == 0.5
    assert non_negative_int("0") == 0
    for parse, text, message in [
        (non_negative_int, "-1", "non-negative integer"),
        (positive_int, "0", "positive integer"),
        (positive_int, "2.5", "not a number"),
        (positive_float, "-1", "positive finite number"),
        (positive_float, "x", "not a number"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)
