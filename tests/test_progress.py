"""progress.py: one progress display, shown only when enabled and stderr is a terminal; in every
other case (cron, pytest, --no-progress) each call is a no-op that writes nothing."""

from __future__ import annotations

import io
import sys

import pytest

from leadscore import progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


def _use_every_call(b: progress.Bar) -> None:
    b.update(3)
    b.update(text="halfway")
    b.update()
    b.update(10, text="done")


@pytest.mark.parametrize("stream, enabled", [(FakeTerminal, False), (NotATerminal, True), (NotATerminal, False)])
def test_a_bar_not_shown_writes_nothing_and_every_call_is_a_no_op(monkeypatch, capsys, stream, enabled):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.bar("scoring", total=10, enabled=enabled) as b:
        _use_every_call(b)
    with progress.bar("train", total=60, unit="s budget", enabled=enabled, elapsed=lambda: 12.0) as b:
        _use_every_call(b)
    assert err.getvalue() == ""
    assert capsys.readouterr() == ("", "")


def test_on_a_terminal_the_bar_is_drawn_on_stderr_and_closed(monkeypatch, capsys):
    err = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.bar("train", total=60, unit="s budget", elapsed=lambda: 12.0) as b:
        b.update(text="lightgbm: trial 3")
    shown = err.getvalue()
    assert "train" in shown and "lightgbm: trial 3" in shown and "of 60 s budget" in shown
    assert capsys.readouterr().out == ""  # nothing on stdout: the nightly's log stays clean
    b.update(5)  # after the block the bar is closed: updates are no-ops again
    assert err.getvalue() == shown


def test_the_clock_moves_a_budget_bar_but_never_past_its_total(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    now = [12.0]
    b = progress.Bar("train", total=60, unit="s budget", enabled=True, elapsed=lambda: now[0])
    try:
        b.update(text="x")
        assert b._progress.tasks[0].completed == 12.0
        now[0] = 75.0  # training may overrun its budget a little: the bar stops at full
        b.update(text="y")
        assert b._progress.tasks[0].completed == 60
    finally:
        b.close()
    b.close()  # closing twice is harmless


def test_the_bar_is_closed_when_the_block_raises(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    with pytest.raises(RuntimeError):
        with progress.bar("scoring", total=5) as b:
            raise RuntimeError("step failed")
    assert b._progress is None
