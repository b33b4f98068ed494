"""The one lock every writing command takes (ingest, build, train, score, publish, nightly).

DuckDB lets a single process open the database for writing; a second writer used to fail
half-way through with DuckDB's lock error, sometimes after minutes of work. Instead, each writing
command takes this non-blocking file lock beside the database *before* it imports anything heavy,
and a second one exits at once with EXIT_BUSY, naming the holder. The lock is an flock on an open
file: the kernel releases it when the holder exits, however it exits (SIGKILL included), so a
killed run never leaves a stale lock behind. This module imports only the standard library and
config so that checking the lock costs milliseconds.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from leadscore import config
from leadscore.errors import Busy

_held: dict[str, int] = {}  # lock path -> fd, while this process holds it


def lock_path() -> Path:
    return config.data_dir() / ".leadscore.lock"


def held() -> bool:
    return str(lock_path()) in _held


@contextmanager
def exclusive(command: str) -> Iterator[None]:
    """Hold the database lock for the block; re-entrant within one process."""
    path = lock_path()
    key = str(path)
    if key in _held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "unknown process"
            raise Busy(
                f"busy: another leadscore command holds {config.db_path()} ({holder}); "
                "nothing was done, try again when it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"leadscore {command}, pid {os.getpid()} since {datetime.now():%Y-%m-%d %H:%M:%S}".encode(), 0)
        _held[key] = fd
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # closing releases the lock
