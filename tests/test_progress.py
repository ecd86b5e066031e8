"""blockrecon.progress: one bar, shown only when enabled; redrawn on a terminal, written as
lines elsewhere once the work has lasted a while."""

import io

import pytest

from blockrecon.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "enabled, terminal, shown", [(True, True, True), (False, True, False), (False, False, False)]
)
def test_bar_shows_only_when_enabled(monkeypatch, enabled, terminal, shown):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    bar = progress_bar(range(3), "work", enabled)
    assert bar.disable is not shown
    assert list(bar) == [0, 1, 2]
    assert ("work" in stderr.getvalue()) is shown


def test_bar_off_a_terminal_writes_lines_only_for_long_work(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    assert list(progress_bar(range(3), "short")) == [0, 1, 2]
    assert stderr.getvalue() == ""  # shorter than LOG_INTERVAL_S: nothing
    monkeypatch.setattr("blockrecon.progress.LOG_INTERVAL_S", 0.0)
    with progress_bar(None, "long", total=3) as bar:
        for _ in range(3):
            bar.update()
    lines = stderr.getvalue().splitlines(keepends=True)
    assert "\r" not in stderr.getvalue() and all(line.endswith("\n") for line in lines)
    assert all(line.startswith("long:") for line in lines)
    assert "3/3" in lines[-1]


def test_manual_bar_counts_to_total(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    with progress_bar(None, "work", total=5, initial=2) as bar:
        bar.update()
        assert (bar.n, bar.total) == (3, 5)
