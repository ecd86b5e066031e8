"""The ``--backend`` option of the subcommands that run NUFFTs, and the line that names it."""

from __future__ import annotations

import argparse
import sys

import torch

from blockrecon.physics import BACKEND_NAMES, resolve_backend


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend`` (default ``auto``) to ``parser``."""
    parser.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default="auto",
        help="NUFFT backend: auto = the fastest installed for the device (FINUFFT on CPU; "
        "cuFINUFFT, else SigPy on CuPy, on CUDA); dft = the exact transform, slow, for "
        "checks on small volumes",
    )


def announce_backend(backend: str, device: torch.device | str) -> None:
    """Print the backend that ``backend`` means on ``device`` as one line on stderr, once the
    inputs are checked and the work starts (``resolve_backend`` checks the name up front)."""
    name = resolve_backend(backend, device)
    print(f"NUFFT backend: {name} ({torch.device(device).type})", file=sys.stderr)
