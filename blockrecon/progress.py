"""The one progress bar of blockrecon: a tqdm bar shown only when asked for and when stderr is a
terminal, so that logs, pipes and tests stay free of bar output."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress_bar(
    iterable: Iterable | None = None,
    desc: str = "",
    enabled: bool = True,
    total: int | None = None,
    **kw: Any,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps) labelled ``desc``.

    Shown only when ``enabled`` and stderr is a terminal; transient (``leave=False``) unless
    ``kw`` says otherwise. Other keywords (``initial``, ...) go to tqdm.
    """
    kw.setdefault("leave", False)
    show = enabled and sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=not show, **kw)
