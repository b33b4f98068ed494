"""Run dbt as a subprocess of the same virtualenv.

A subprocess, not dbt's in-process runner: dbt keeps global state and its own DuckDB
connection, and the nightly job must be sure every handle on the file is closed before it
scores. The same LEADSCORE_DB the CLI uses is passed on, so both always see one database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadscore import config, faults
from leadscore.errors import Busy, LeadscoreError


@dataclass
class DbtResult:
    returncode: int
    counts: dict[str, int]  # "<resource type> <status>" -> count, e.g. "model success", "test pass"
    invocation_id: str | None
    elapsed: float
    failures: list[str]

    def summary(self) -> str:
        """'dbt build: 9 model success, 217 test pass, ... in 12.3 s' for a one-line summary."""
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items())) or "nothing run"
        return f"dbt build: {counts} in {self.elapsed:.1f} s"


# What the nightly job (and `make bench`, which times it) asks of dbt: every seed, model, data
# test and the contracts, but not the unit tests. A unit test checks a model's SQL on fixed
# fixtures, so its result changes only when the SQL does: it runs wherever the SQL can change
# (`make test`, CI, `leadscore build` and `dbt build` by hand), as dbt's documentation advises
# ("run unit tests in development or CI, not in production"), not again on every night's data.
NIGHTLY_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


FILE_LOG_LEVEL = "info"  # dbt's logs/dbt.log under the target folder (run_dbt)


def project_vars() -> dict[str, Any]:
    """The vars dbt_project.yml declares, with their defaults."""
    import yaml

    path = config.project_root() / "dbt_project.yml"
    project = yaml.safe_load(path.read_text()) or {}
    return dict(project.get("vars") or {})


def _kind(value: Any) -> str:
    """A var value's kind in words, as the check of --vars names it."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty"
    return "a text"


def _fits(default: Any, value: Any) -> bool:
    """Whether `value` has the kind of the var's `default` (a whole number will do for a number)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def vars_problems(given: dict[Any, Any], declared: dict[str, Any] | None = None) -> list[str]:
    """What is wrong with a `--vars` mapping: a name dbt_project.yml does not declare (dbt would
    ignore it: a typo would build the defaults without a word), or a value of another kind than
    the var's default (dbt would paste it into the SQL and fail partway through the build,
    leaving the models it had built). Empty when every var is known and of its kind."""
    import difflib
    import reprlib

    declared = project_vars() if declared is None else declared
    problems = []
    for name, value in given.items():
        if name not in declared:
            close = difflib.get_close_matches(str(name), list(declared), n=1)
            problems.append(f"unknown var {name!r}" + (f" (did you mean {close[0]!r}?)" if close else
                                                       " (dbt_project.yml declares no such var)"))
        elif not _fits(declared[name], value):
            problems.append(f"{name} must be {_kind(declared[name])} like its default "
                            f"{reprlib.repr(declared[name])}, got {reprlib.repr(value)}")
    return problems


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def target_path() -> Path:
    """dbt's target folder for this database: beside it, named after it. A shared target/ made
    `leadscore build` on database B report database A's results (run_results.json of another
    run); per database, and emptied of run_results.json before each run, the result read back is
    always this run's."""
    db = config.db_path()
    return db.with_name(f".{db.name}.dbt-target")


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """preexec_fn: ask the kernel to SIGKILL dbt when the leadscore process dies, however it
    dies (a SIGKILL of the nightly job included), so dbt never outlives it holding the database."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the process group kill below still covers every other way out


def run_dbt(args: list[str], quiet: bool = False) -> DbtResult:
    """Run `dbt <args>` from the project root; raise LeadscoreError if it fails.

    dbt runs in its own process group with a parent-death signal: if leadscore is interrupted
    the whole group is killed, and if leadscore is killed outright the kernel kills dbt.

    A process outside leadscore that opens the database after the check below and before dbt
    does makes dbt fail before it runs anything; then run_dbt waits for it (LEADSCORE_DB_WAIT
    in all, as db.connect) and runs dbt again, and reports busy (exit 75) after."""
    from leadscore import db, tables

    # Open the database once ourselves first: a file that is not a DuckDB database, or one held
    # by a process outside leadscore, is then a one-line error (or a wait) instead of a dbt
    # traceback. The tables Python owns (dbt's sources in raw and ops) are made sure of, so the
    # first build of a database that never trained still finds ops.model_registry.
    with db.session() as con, db.transaction(con):
        tables.ensure_schemas(con)
    root = config.project_root()
    env = dict(os.environ)
    env["LEADSCORE_DB"] = str(config.db_path())
    env.setdefault("DBT_PROFILES_DIR", str(root))
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    target = target_path()
    env["DBT_TARGET_PATH"] = str(target)
    env.setdefault("DBT_LOG_PATH", str(target / "logs"))
    # dbt's file log at info (each node's start and result), not its default debug (every SQL
    # statement and connection event of ~400 nodes): about 8% of a nightly dbt build's CPU at
    # 64,570 leads. The failures are in run_results.json and each node's SQL under
    # <target>/compiled and <target>/run; DBT_LOG_LEVEL_FILE=debug brings the statements back.
    env.setdefault("DBT_LOG_LEVEL_FILE", FILE_LOG_LEVEL)
    # dbt writes into a pipe now (run_dbt keeps its tail): unbuffered, so `leadscore build` shows
    # each node's line as it ends, as on a terminal
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [dbt_executable(), *args]
    deadline = time.monotonic() + db.wait_seconds()
    while True:
        (target / "run_results.json").unlink(missing_ok=True)
        returncode, output = _run_once(cmd, root, env, quiet)
        result = read_run_results(root, target)
        result.returncode = returncode
        if returncode == 0 or not _lost_the_lock(output, result):
            break
        # Another process opened the database between our check above and dbt's own open (a
        # DuckDB shell, a `leadscore models list`): dbt stopped before running anything. Wait for
        # that process as every leadscore command does (db.connect), then run dbt again.
        left = deadline - time.monotonic()
        if left <= 0:
            raise Busy(f"busy: database {config.db_path()} was held by another process whenever dbt tried to "
                       f"open it ({_lock_line(output)}); try again when it ends")
        print("leadscore: dbt could not open the database, another process opened it first: "
              "waiting for it, then running dbt again", file=sys.stderr, flush=True)
        with db.session(wait=left):
            pass
    if returncode != 0:
        if result.failures:
            detail = "; ".join(f.splitlines()[0] for f in result.failures[:3])
            if len(result.failures) > 3:
                detail += f"; and {len(result.failures) - 3} more"
        else:
            tail = output.strip().splitlines()
            detail = tail[-1] if tail else "see the dbt output above"
        raise LeadscoreError(f"dbt {' '.join(args)} failed (exit {returncode}): {detail}")
    return result


# DuckDB's message when another process holds the file ("IO Error: Could not set lock on file ...")
_LOCK_MESSAGE = re.compile(r"could not set lock on file", re.IGNORECASE)
OUTPUT_TAIL_LINES = 400  # what run_dbt keeps of dbt's output, for the error message and the lock check


def _lost_the_lock(output: str, result: DbtResult) -> bool:
    """dbt failed because it could not open the database, before any node ran."""
    return not result.counts and bool(_LOCK_MESSAGE.search(output))


def _lock_line(output: str) -> str:
    line = next((x for x in output.splitlines() if _LOCK_MESSAGE.search(x)), "")
    return " ".join(line.split())[:300]


def _run_once(cmd: list[str], root: Path, env: dict[str, str], quiet: bool) -> tuple[int, str]:
    """One dbt process: its exit code and the tail of its output (stdout and stderr together),
    which is also shown as it comes unless `quiet`."""
    import signal

    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    try:
        faults.pause_point("dbt.started", detail=str(proc.pid))
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            if not quiet:
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    return proc.returncode, "".join(tail)


def read_run_results(root: Path | None = None, target: Path | None = None) -> DbtResult:
    """Counts and failures from dbt's run_results.json (the machine-readable record of a run)."""
    path = (target or (root or config.project_root()) / "target") / "run_results.json"
    if not path.exists():
        return DbtResult(0, {}, None, 0.0, [])
    data = json.loads(path.read_text())
    counts: dict[str, int] = {}
    failures: list[str] = []
    for r in data.get("results", []):
        status = str(r.get("status"))
        kind = str(r.get("unique_id", "")).split(".")[0]
        key = f"{kind} {status}"
        counts[key] = counts.get(key, 0) + 1
        if status in ("error", "fail"):
            message = " ".join((r.get("message") or status).split())
            failures.append(f"{r.get('unique_id')}: {message}")
    return DbtResult(
        0,
        counts,
        data.get("metadata", {}).get("invocation_id"),
        float(data.get("elapsed_time") or 0.0),
        failures,
    )
