"""Run dbt as a subprocess of the same virtualenv.

A subprocess, not dbt's in-process runner: dbt keeps global state and its own DuckDB
connection, and the nightly job must be sure every handle on the file is closed before it
scores. The same LEADSCORE_DB the CLI uses is passed on, so both always see one database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from leadscore import config
from leadscore.errors import LeadscoreError


@dataclass
class DbtResult:
    returncode: int
    counts: dict[str, int]  # "<resource type> <status>" -> count, e.g. "model success", "test pass"
    invocation_id: str | None
    elapsed: float
    failures: list[str]


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(args: list[str], quiet: bool = False) -> DbtResult:
    """Run `dbt <args>` from the project root; raise LeadscoreError if it fails."""
    root = config.project_root()
    env = dict(os.environ)
    env["LEADSCORE_DB"] = str(config.db_path())
    env.setdefault("DBT_PROFILES_DIR", str(root))
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    cmd = [dbt_executable(), *args]
    proc = subprocess.run(
        cmd,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
        check=False,
    )
    result = read_run_results(root)
    result.returncode = proc.returncode
    if proc.returncode != 0:
        if result.failures:
            detail = "; ".join(f.splitlines()[0] for f in result.failures[:3])
            if len(result.failures) > 3:
                detail += f"; and {len(result.failures) - 3} more"
        else:
            tail = (proc.stdout or "").strip().splitlines()
            detail = tail[-1] if tail else "see the dbt output above"
        raise LeadscoreError(f"dbt {' '.join(args)} failed (exit {proc.returncode}): {detail}")
    return result


def format_counts(counts: dict[str, int]) -> str:
    """'9 model success, 217 test pass, ...' for a one-line summary."""
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing run"


def read_run_results(root: Path | None = None) -> DbtResult:
    """Counts and failures from dbt's run_results.json (the machine-readable record of a run)."""
    path = (root or config.project_root()) / "target" / "run_results.json"
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
