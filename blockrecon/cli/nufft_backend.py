"""The ``--backend`` option of the subcommands that run NUFFTs, and the line that names it."""

from __future__ import annotations

import argparse
import sys

import torch

from blockrecon.physics import BACKEND_NAMES, resolve_backend


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend`` (default ``auto``) to ``parser``."""
    parser.add_argument(
        "--backend", choices=BACKEND_NAMES, default="auto",
        help="NUFFT backend: auto = the fastest installed for the device (FINUFFT on CPU; "
             "cuFINUFFT, else SigPy on CuPy, on CUDA); dft = the exact transform, slow, for "
             "checks on small volumes")


def announce_backend(name: str, device: torch.device | str, show: bool = True) -> str:
    """The backend ``name`` means on ``device`` (ValueError if it cannot run there), printed as
    one line on stderr when ``show``."""
    backend = resolve_backend(name, device)
    if show:
        print(f"NUFFT backend: {backend} ({torch.device(device).type})", file=sys.stderr)
    return backend
