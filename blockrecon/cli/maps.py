"""Coil-map estimation options shared by ``recon`` and ``train`` (``--maps-method``,
``--calib-width``) and the one-line report of map warnings."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator

from blockrecon.physics.maps import MAX_CALIB_WIDTH, METHODS, MIN_CALIB_WIDTH


def calib_width_value(text: str) -> int:
    """argparse type of ``--calib-width``: an integer of at least 4."""
    try:
        width = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if width < 4:
        raise argparse.ArgumentTypeError(f"must be at least 4, got {width}")
    return width


def add_map_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--maps-method`` and ``--calib-width`` (used when maps are estimated)."""
    parser.add_argument(
        "--maps-method",
        choices=METHODS,
        default="espirit",
        help="coil-map estimation method (for files without maps)",
    )
    parser.add_argument(
        "--calib-width",
        type=calib_width_value,
        default=None,
        metavar="N",
        help="side of the k-space calibration cube of map estimation, 4 to the "
        "smallest image size (default: from the trajectory, 2 (r - 1) for "
        "the radius r within which it is Nyquist-sampled, "
        f"{MIN_CALIB_WIDTH} to {MAX_CALIB_WIDTH})",
    )


def check_calib_width(width: int | None, image_shape: tuple[int, ...]) -> None:
    """Raise ValueError when ``--calib-width`` exceeds the smallest image size."""
    if width is not None and width > min(image_shape):
        raise ValueError(
            f"--calib-width {width} exceeds the smallest image size "
            f"{min(image_shape)} ({'x'.join(map(str, image_shape))})"
        )


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Print warnings raised inside as ``blockrecon COMMAND: warning: MESSAGE`` on stderr."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"blockrecon {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
