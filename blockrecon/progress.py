"""The one progress bar of blockrecon: a tqdm bar shown only when asked for.

On a terminal it redraws in place. Elsewhere (a log file, a batch job's output, a pipe) work
that lasts longer than :data:`LOG_INTERVAL_S` prints its state as one line every
:data:`LOG_INTERVAL_S` seconds, so that a long run followed with ``tail`` shows its progress and
ETA, while short work, and tests, leave no bar output.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.std import tqdm

#: Seconds between the lines of a bar whose stderr is not a terminal; none before this.
LOG_INTERVAL_S = 60.0
_CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _Lines:
    """A stream for tqdm that turns each redraw into one line of ``stream`` (and drops the
    blank redraw that clears a transient bar, and the cursor moves of nested bars)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = _CURSOR_MOVES.sub("", text).replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _LoggedBar(tqdm):
    """A bar whose postfix (a loss, a step size) waits for the next line instead of
    writing one of its own."""

    def set_postfix(self, ordered_dict=None, refresh: bool = False, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = False) -> None:
        super().set_postfix_str(s, refresh)


def progress_bar(
    iterable: Iterable | None = None,
    desc: str = "",
    enabled: bool = True,
    total: int | None = None,
    **kw: Any,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps) labelled ``desc``.

    Shown only when ``enabled``: redrawn on a terminal, else written as a line every
    :data:`LOG_INTERVAL_S` seconds once it has run that long. Transient (``leave=False``)
    unless ``kw`` says otherwise. Other keywords (``initial``, ...) go to tqdm.
    """
    kw.setdefault("leave", False)
    if not enabled or sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, disable=not enabled, **kw)
    kw.setdefault("file", _Lines(sys.stderr))
    kw.setdefault("mininterval", LOG_INTERVAL_S)
    kw.setdefault("delay", LOG_INTERVAL_S)
    kw.setdefault("miniters", 1)  # no adaptive miniters: no monitor thread repeating a line
    kw.setdefault("ascii", True)
    return _LoggedBar(iterable, desc=desc, total=total, **kw)
