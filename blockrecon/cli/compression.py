"""The ``--compress-coils`` option shared by ``recon`` and ``train`` and its check against a
scan's coil count."""

from __future__ import annotations

import argparse

from blockrecon.cli.options import positive_int


def add_compression_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--compress-coils N`` (default: no compression) to ``parser``."""
    parser.add_argument(
        "--compress-coils",
        type=positive_int,
        default=None,
        metavar="N",
        help="compress the k-space to N virtual coils (PCA of the coils' k-space) before "
        "reconstruction: faster, with little loss for N about half the coils or more; given "
        "maps are projected by the same matrix, estimated maps are estimated on the virtual "
        "coils (default: all coils, no compression)",
    )


def check_virtual_coils(n_virtual: int | None, n_coils: int, source: str) -> None:
    """Raise ValueError when ``--compress-coils`` asks for more virtual coils than ``source``
    (a file or the simulation) has coils."""
    if n_virtual is not None and n_virtual > n_coils:
        raise ValueError(
            f"--compress-coils {n_virtual} exceeds the {n_coils} coils of {source} "
            f"(give 1 to {n_coils})"
        )
