"""The one progress display: a rich bar on stderr when it is a terminal, nothing otherwise.

Scoring counts leads and training counts seconds of its budget; both go through `bar`, so a
nightly run under cron logs no control characters and an interactive run shows one style.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """Updates to a bar that may not be shown: every method is a no-op when disabled."""

    def __init__(self, label: str, total: float | None, unit: str | None, enabled: bool,
                 elapsed: Callable[[], float] | None = None):
        self._progress: Any = None
        self._total = total
        self._elapsed = elapsed
        if not (enabled and sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns: list[Any] = [TextColumn(f"[bold]{label}[/bold] {{task.description}}"), BarColumn()]
        if unit is None:
            columns.append(MofNCompleteColumn())
        else:
            columns += [TimeElapsedColumn(), TextColumn(f"of {{task.total:.0f}} {unit}")]
        self._progress = Progress(*columns, console=Console(stderr=True), transient=unit is None)
        self._progress.start()
        self._task = self._progress.add_task("", total=total)

    def update(self, completed: float | None = None, text: str | None = None) -> None:
        """Move to `completed` (default: the `elapsed` clock, capped at the total)."""
        if self._progress is None:
            return
        if completed is None and self._elapsed is not None:
            completed = min(self._elapsed(), self._total) if self._total is not None else self._elapsed()
        fields: dict[str, Any] = {} if text is None else {"description": text}
        if completed is not None:
            fields["completed"] = completed
        self._progress.update(self._task, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def bar(label: str, total: float | None = None, unit: str | None = None, enabled: bool = True,
        elapsed: Callable[[], float] | None = None) -> Iterator[Bar]:
    """`with progress.bar("scoring", total=n) as b: ... b.update(done)`. With `unit` (e.g.
    "s budget") the bar shows elapsed time against the total instead of a count, and `elapsed`
    (a clock) moves it on each `update(text=...)`."""
    b = Bar(label, total, unit, enabled, elapsed)
    try:
        yield b
    finally:
        b.close()
