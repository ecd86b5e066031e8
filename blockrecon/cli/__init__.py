"""The ``blockrecon`` command.

The command is thin: it parses arguments and calls the library. Each subcommand lives in its
own module of this package and exposes ``register(subparsers)``, which adds an
``argparse`` parser whose defaults hold ``func=callable(args) -> int``.

Exit codes: 0 done, 2 bad input or usage (one line naming the problem, no traceback),
1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from blockrecon import __version__

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "simulate", "recon", "train", "bench", "ulm", "seg")

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2

#: Exceptions that mean "the user gave us something wrong", reported in one line.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
               PermissionError, FileExistsError)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors print one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = _Parser(prog="blockrecon", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"blockrecon {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"blockrecon.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"blockrecon {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"blockrecon {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the command's last line of defence
        if args.debug:
            raise
        print(f"blockrecon {args.command}: internal error: {type(err).__name__}: {err}"
              " (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
