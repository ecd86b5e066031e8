"""blockrecon.progress: one bar, shown only when enabled and stderr is a terminal."""

import io

import pytest

from blockrecon.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "enabled, terminal, shown", [(True, True, True), (False, True, False), (True, False, False)]
)
def test_bar_shows_only_when_enabled_on_a_terminal(monkeypatch, enabled, terminal, shown):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    bar = progress_bar(range(3), "work", enabled)
    assert bar.disable is not shown
    assert list(bar) == [0, 1, 2]


def test_manual_bar_counts_to_total(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    with progress_bar(None, "work", total=5, initial=2) as bar:
        bar.update()
        assert (bar.n, bar.total) == (3, 5)
