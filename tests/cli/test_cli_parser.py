"""The ``blockrecon`` parsers: common options at every level, complete and plain help texts."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from blockrecon.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every (nested) subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            yield action


PARSERS = list(_parsers(build_parser()))


def test_every_level_is_walked():
    progs = {parser.prog for parser in PARSERS}
    assert {
        "blockrecon",
        "blockrecon bench memory",
        "blockrecon ulm bench-memory",
        "blockrecon seg predict",
    } <= progs


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.prog)
def test_help_is_complete_and_plain(parser):
    assert parser.description and "``" not in parser.description
    formatter = parser._get_formatter()
    for action in _options(parser):
        assert action.help and "``" not in action.help, action.option_strings
        default = action.default
        if default is not None and default is not False and default is not argparse.SUPPRESS:
            typed = (
                " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
            )
            assert f"default: {typed}" in formatter._expand_help(action), action.option_strings
    parser.format_help()  # every help string formats


def test_every_parser_takes_the_common_options():
    for parser in PARSERS:
        options = {o for action in parser._actions for o in action.option_strings}
        assert {"--debug", "--no-progress"} <= options, parser.prog


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--debug", "--no-progress"],
        ["--debug", "--no-progress", "demo"],
        ["--no-progress", "recon", "x.h5", "--method", "cg", "--out", "x.nii", "--debug"],
        ["bench", "--debug", "memory", "--shape", "8", "8", "8", "--patch", "4", "--no-progress"],
        ["--debug", "ulm", "--no-progress", "simulate", "--out", "x.h5"],
        [
            "seg",
            "predict",
            "--model",
            "m.pt",
            "--input",
            "x.nii",
            "--output",
            "y.nii",
            "--no-progress",
            "--debug",
        ],
    ],
    ids=" ".join,
)
def test_common_options_before_or_after_the_subcommand(argv):
    args = build_parser().parse_args(argv)
    assert args.debug is True and args.no_progress is True


def test_common_options_default_to_off():
    args = build_parser().parse_args(
        ["seg", "predict", "--model", "m.pt", "--input", "x.nii", "--output", "y.nii"]
    )
    assert args.debug is False and args.no_progress is False


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    argv = [
        "recon",
        str(tmp_path / "absent.h5"),
        "--method",
        "cg",
        "--out",
        str(tmp_path / "image.nii"),
    ]
    assert main(argv) == 2
    with pytest.raises(FileNotFoundError):
        main([*argv, "--debug"])
