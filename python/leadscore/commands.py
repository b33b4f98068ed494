"""What each CLI command does, in terms of the step modules, and how it reports to the user.

Kept apart from cli.py so that argument parsing stays import-light and each command's glue
(open the database, call one step, print a short summary) reads top to bottom.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leadscore import config, db
from leadscore.errors import LeadscoreError


def _say(message: str) -> None:
    print(message, flush=True)


def dispatch(args: argparse.Namespace) -> int:
    handler = globals()[f"cmd_{args.command.replace('-', '_')}"]
    return int(handler(args) or 0)


def cmd_generate(args: argparse.Namespace) -> int:
    from leadscore.generate import generate

    kwargs = dict(
        out_dir=args.out,
        train_rows=args.train_rows,
        score_rows=args.score_rows,
        seed=args.seed,
        truth_path=args.truth,
    )
    if getattr(args, "score_prevalence", None) is not None:
        kwargs["score_prevalence"] = args.score_prevalence
    result = generate(**kwargs)
    _say(
        f"wrote {result['train_path']} ({result['train_rows']} rows, "
        f"{result['train_positive_rate']:.1%} converted) and {result['score_path']} "
        f"({result['score_rows']} rows) in {result['seconds']:.1f} s"
    )
    return 0


def ingest_paths(args: argparse.Namespace) -> list[tuple[Path, str]]:
    files = [(p, "train") for p in args.train] + [(p, "score") for p in args.score]
    files += [(p, "auto") for p in args.files]
    if not files:
        raise LeadscoreError("nothing to load: give --train PATH and/or --score PATH")
    return files


def report_loads(results: list) -> None:
    for r in results:
        if r.status == "skipped":
            _say(f"{r.path}: skipped, {r.message}")
            continue
        line = (
            f"{r.path}: loaded {r.rows_loaded} rows as load {r.load_id} "
            f"({r.train_rows} labeled, {r.score_rows} to score)"
        )
        _say(line)
        if r.message:
            print(f"{r.path}: warning: {r.message}", file=sys.stderr, flush=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    from leadscore.ingest import ingest_files

    files = ingest_paths(args)
    con = db.connect()
    try:
        results = ingest_files(con, files, strict=args.strict)
    finally:
        con.close()
    report_loads(results)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from leadscore.build import run_dbt

    extra = [a for a in args.dbt_args if a != "--"]
    result = run_dbt(["build", *extra])
    _say(f"dbt build: {_format_counts(result.counts)} in {result.elapsed:.1f} s ({config.db_path()})")
    return 0


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing run"
