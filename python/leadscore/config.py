"""Where things live. One function per location so tests can point everything at a temp dir
through environment variables instead of monkeypatching module globals."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = Path("data") / "leadscore.duckdb"


def project_root() -> Path:
    """The folder holding dbt_project.yml.

    The CLI is usually run from the repository root, but a nightly cron job may not be, so we
    honour LEADSCORE_HOME, then the working directory, then the checkout this package lives in.
    """
    env = os.environ.get("LEADSCORE_HOME")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "dbt_project.yml").is_file() and (candidate / "models_sql").is_dir():
            return candidate
    return Path(__file__).resolve().parents[2]


def db_path() -> Path:
    """The DuckDB file; LEADSCORE_DB overrides it for the CLI and the dbt profile alike."""
    env = os.environ.get("LEADSCORE_DB")
    path = Path(env) if env else project_root() / DEFAULT_DB
    return path if path.is_absolute() else (Path.cwd() / path)


def data_dir() -> Path:
    """Folder beside the database for models, serving snapshots and locks."""
    return db_path().parent


def models_dir() -> Path:
    return data_dir() / "models"


def serving_dir() -> Path:
    return data_dir() / "serving"
