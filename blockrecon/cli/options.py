"""Option helpers shared by the subcommands: whether to show progress bars, and argparse
``type=`` parsers built on :mod:`blockrecon.checks`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from blockrecon.checks import check_positive, check_positive_int

T = TypeVar("T")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars unless ``--no-progress`` (:func:`blockrecon.progress.progress_bar`)."""
    return not args.no_progress


def _parse(text: str, kind: type, check: Callable[[object, str], T]) -> T:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return check(value, "the value")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer > 0."""
    return _parse(text, int, check_positive_int)


def non_negative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0."""
    return _parse(text, int, lambda value, name: check_positive_int(value, name, allow_zero=True))


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0."""
    return _parse(text, float, check_positive)


def _non_negative(value: float, name: str) -> float:
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse ``type=``: a finite number >= 0."""
    return _parse(text, float, _non_negative)
