"""runlock.py: one lock for every writing command, taken before the heavy imports; a second
writer is told "busy" (exit 75) at once, naming the holder; the kernel frees the lock."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leadscore import runlock
from leadscore.errors import EXIT_BUSY, Busy

REPO = Path(__file__).resolve().parents[1]


def test_every_writer_is_busy_while_another_holds_the_lock(db_file, tmp_path):
    env = dict(os.environ, LEADSCORE_DB=str(db_file), LEADSCORE_HOME=str(REPO))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from leadscore import runlock\n"
         "with runlock.exclusive('nightly'):\n    print('held', flush=True); time.sleep(120)"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        probe = (
            "import sys; from leadscore import cli; rc = cli.main(sys.argv[1:]); "
            "heavy = [m for m in ('duckdb', 'pandas', 'sklearn', 'dbt') if m in sys.modules]; "
            "print('heavy', heavy); sys.exit(rc)"
        )
        for argv in (["ingest", "--train", "x.csv"], ["build"], ["train"], ["score"], ["publish"],
                     ["nightly", "--input", str(tmp_path)]):
            r = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 75, (argv, r.stderr)
            assert "busy: another leadscore command holds" in r.stderr and "leadscore nightly, pid" in r.stderr
            assert r.stderr.count("\n") == 1
            assert "heavy []" in r.stdout, (argv, r.stdout)
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_lives_beside_the_database(db_file):
    assert runlock.lock_path() == db_file.parent / ".leadscore.lock"


def test_exclusive_is_held_inside_the_block_only_and_names_its_holder(db_file):
    assert not runlock.held()
    with runlock.exclusive("score"):
        assert runlock.held()
        text = runlock.lock_path().read_text()
        assert text.startswith(f"leadscore score, pid {os.getpid()} since ")
        with runlock.exclusive("publish"):  # re-entrant: the nightly calls the steps under its own lock
            assert runlock.held()
        assert runlock.held()
    assert not runlock.held()


def test_a_second_holder_is_busy_with_the_first_ones_name(db_file):
    with runlock.exclusive("nightly"):
        pass  # leaves the holder's line in the file
    path = runlock.lock_path()
    fd = os.open(path, os.O_RDWR)  # another open file description: flock sees another holder
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(Busy, match=r"busy: another leadscore command holds .*\(leadscore nightly, pid") as exc:
            with runlock.exclusive("score"):
                pytest.fail("the block must not run")
        assert exc.value.exit_code == EXIT_BUSY and not runlock.held()
    finally:
        os.close(fd)  # closing releases it, as the kernel does when a holder dies
    with runlock.exclusive("score"):
        assert runlock.held()


def test_the_lock_is_released_when_the_block_raises(db_file):
    with pytest.raises(RuntimeError):
        with runlock.exclusive("train"):
            raise RuntimeError("step failed")
    assert not runlock.held()
    fd = os.open(runlock.lock_path(), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise BlockingIOError if still held
    finally:
        os.close(fd)
