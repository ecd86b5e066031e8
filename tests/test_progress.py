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
    with progress_bar(None, "short", total=3) as bar:
        for step in range(3):
            bar.set_postfix(loss=step)  # a postfix writes no line of its own
            bar.update()
    assert stderr.getvalue() == ""  # shorter than LOG_INTERVAL_S: nothing
    monkeypatch.setattr("blockrecon.progress.LOG_INTERVAL_S", 0.0)
    with progress_bar(None, "long", total=3) as bar:
        for _ in progress_bar(range(2), "inner"):  # nested: tqdm moves the cursor
            pass
        for _ in range(3):
            bar.update()
    lines = stderr.getvalue().splitlines(keepends=True)
    assert not any(c in stderr.getvalue() for c in "\r\x1b")
    assert all(line.endswith("\n") for line in lines)
    assert {line.split(":")[0] for line in lines} == {"long", "inner"}
    assert "3/3" in lines[-1]


def test_manual_bar_counts_to_total(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    with progress_bar(None, "work", total=5, initial=2) as bar:
        bar.update()
        assert (bar.n, bar.total) == (3, 5)
