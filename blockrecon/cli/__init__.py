"""The ``blockrecon`` command.

The command is thin: it parses arguments and calls the library. Each subcommand lives in its
own module of this package and exposes ``register(subparsers)``, which adds an
``argparse`` parser whose defaults hold ``func=callable(args) -> int``. The common options
``--debug`` and ``--no-progress`` are accepted before or after any (nested) subcommand.

Exit codes: 0 done, 2 bad input or usage (one line naming the problem, no traceback),
1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from blockrecon import __version__
from blockrecon.atomic import NotWritableError

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "simulate",
    "undersample",
    "recon",
    "train",
    "bench",
    "ulm",
    "seg",
)

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2

#: Exceptions that mean "the user gave us something wrong", reported in one line.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    FileExistsError,
    NotWritableError,
)


def plain_text(text: str) -> str:
    """``text`` without the docstrings' inline-literal markup (double backquotes)."""
    return text.replace("``", "")


def _default_text(default: object) -> str:
    """A default value as it is typed on the command line (sequences space-separated)."""
    if isinstance(default, list | tuple):
        return " ".join(map(str, default))
    return str(default)


class _HelpFormatter(argparse.HelpFormatter):
    """Help that ends each option's text with its default, where it has one (not None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (
            not action.option_strings
            or "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: {_default_text(default).replace('%', '%%')})"


class _Subcommands(argparse._SubParsersAction):
    """Subcommands whose parsers take their help line as description unless given one."""

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        return super().add_parser(name, **kwargs)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--debug`` and ``--no-progress``. Their default is SUPPRESS so that a subcommand's parser
    keeps a value given before the subcommand; :func:`build_parser` sets the command's defaults."""
    common = parser.add_argument_group("common options")
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback on errors",
    )
    common.add_argument(
        "--no-progress", action="store_true", default=argparse.SUPPRESS, help="hide progress bars"
    )


class _Parser(argparse.ArgumentParser):
    """The parser of the command and of every (nested) subcommand: usage errors print one line
    and exit 2, help states defaults, descriptions are plain text, and the common options
    (``--debug``, ``--no-progress``) are accepted before or after any subcommand."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        if self.description:
            self.description = plain_text(self.description)
        self.register("action", "parsers", _Subcommands)
        _add_common_options(self)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = _Parser(prog="blockrecon", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"blockrecon {__version__}")
    parser.set_defaults(debug=False, no_progress=False)
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
        print(
            f"blockrecon {args.command}: internal error: {type(err).__name__}: {err}"
            " (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
