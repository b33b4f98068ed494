"""File helpers shared by ingestion, evaluation, the model registry and the serving snapshot:
the input-file check, content hashes (a file is known by its sha256, not its name) and fsync
before an atomic rename."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def check_input_file(path: Path, expected: str, error: type[Exception]) -> None:
    """Raise `error` naming `path` when it is missing, not a regular file, or empty; `expected`
    says what an empty file should have held."""
    if not path.exists():
        raise error(f"{path}: no such file")
    if not path.is_file():
        raise error(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise error(f"{path}: file is empty (expected {expected})")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's) contents to disk, so a rename that follows publishes
    complete data even after a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
