"""What each CLI command does, in terms of the step modules, and how it reports to the user.

Kept apart from cli.py so that argument parsing stays import-light and each command's glue
(open the database, call one step, print a short summary) reads top to bottom.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leadscore import config, db
from leadscore.errors import EXIT_FILES_REFUSED, LeadscoreError


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
    if args.score_prevalence is not None:
        kwargs["score_prevalence"] = args.score_prevalence
    if args.score_drift:
        kwargs["score_drift"] = True
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
        if r.status == "refused":
            print(f"{r.path}: refused: {r.message}", file=sys.stderr, flush=True)
            continue
        line = (
            f"{r.path}: loaded {r.rows_loaded} rows as load {r.load_id} "
            f"({r.train_rows} labeled, {r.score_rows} to score)"
            + (f"; read as a {r.role} file: {r.role_reason}" if r.role_reason else "")
        )
        _say(line)
        if r.message:
            print(f"{r.path}: warning: {r.message}", file=sys.stderr, flush=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    from leadscore.ingest import ingest_files

    files = ingest_paths(args)
    path = config.db_path()
    existed = path.exists()
    try:
        con = db.connect()
        try:
            results = ingest_files(con, files, strict=args.strict)
        finally:
            con.close()
    except BaseException:
        if not existed:  # a failed first ingest leaves no empty database file behind
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    report_loads(results)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from leadscore.build import format_counts, run_dbt

    extra = [a for a in args.dbt_args if a != "--"]
    result = run_dbt(["build", *extra])
    _say(f"dbt build: {format_counts(result.counts)} in {result.elapsed:.1f} s ({config.db_path()})")
    return 0


def _progress_bar(description: str):
    """A rich progress callback on a terminal, nothing otherwise (cron logs stay clean)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True,
    )
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def cmd_train(args: argparse.Namespace) -> int:
    from leadscore.train import train_model

    con = db.connect()
    try:
        result = train_model(
            con,
            time_budget=args.time_budget,
            trials=args.trials,
            seed=args.seed,
            folds=args.folds,
            ensemble=args.ensemble,
            target_prevalence=args.target_prevalence,
            resume=not args.no_resume,
            progress=sys.stderr.isatty(),
            baseline_only=args.baseline_only,
        )
    finally:
        con.close()
    _say(result.summary())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from leadscore.score import score_leads

    con = db.connect()
    progress, update = _progress_bar("scoring")
    try:
        if progress:
            progress.start()
        result = score_leads(con, args.model, rescore=args.all, batch_size=args.batch_size, progress=update)
    finally:
        if progress:
            progress.stop()
        con.close()
    rate = result.leads_scored / result.seconds if result.seconds else 0.0
    _say(
        f"scored {result.leads_scored} leads with model {result.model_version} as run {result.run_id} "
        f"({result.predicted_converted} at or above cutoff {result.cutoff:.4f}; {rate:,.0f} leads/s)"
        if result.leads_scored
        else f"nothing to score: every unlabeled lead already has a score from {result.model_version} (--all to rescore)"
    )
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from leadscore.serving import publish

    con = db.connect()
    try:
        result = publish(con)
    finally:
        con.close()
    _say(f"published {result.path}: " + ", ".join(f"{t} {n} rows" for t, n in result.tables.items()))
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    from leadscore.nightly import run_nightly

    input_dir = args.input if args.input is not None else config.project_root() / "data" / "raw"
    result = run_nightly(input_dir, retrain=args.retrain, time_budget=args.time_budget, seed=args.seed, say=_say)
    print_summary(result)
    if result.files_refused:
        for r in result.loads:
            if r.status == "refused":
                print(f"leadscore nightly: warning: refused {r.path}: {r.message}", file=sys.stderr, flush=True)
        return EXIT_FILES_REFUSED
    return 0


def print_summary(result) -> None:
    """The contract's summary: rows ingested, dbt results, model, leads scored, top 10 leads."""
    counts = result.dbt_counts
    models = counts.get("model success", 0)
    tests = counts.get("test pass", 0) + counts.get("unit_test pass", 0)
    _say("")
    refused = getattr(result, "files_refused", 0)
    _say(f"nightly run {result.run_id} succeeded" + (f", with {refused} file(s) refused (exit code 3)" if refused else ""))
    _say(f"  rows ingested     {result.rows_ingested} ({result.rows_rejected} rejected, "
         f"{result.files_skipped} file(s) already loaded, {refused} refused)")
    _say(f"  dbt               {models} models built, {tests} tests passed, {counts.get('seed success', 0)} seeds")
    _say(f"  model version     {result.model_version}" + (" (trained in this run)" if result.trained_model else ""))
    _say(f"  leads scored      {result.leads_scored}")
    con = db.connect(read_only=False)
    try:
        top = db.fetch_all(
            con,
            "select lead_id, id, conversion_probability, predicted_converted from main.scored_leads "
            "order by conversion_probability desc, lead_id limit 10",
        )
    finally:
        con.close()
    _say("  top 10 leads      lead_id           id        probability  above cutoff")
    for lead_id, id_, prob, pred in top:
        _say(f"                    {lead_id}  {'' if id_ is None else id_!s:>8}  {prob:11.4f}  {'yes' if pred else 'no'}")


def cmd_export_submission(args: argparse.Namespace) -> int:
    from leadscore.serving import export_submission

    con = db.connect()
    try:
        n = export_submission(con, args.out)
    finally:
        con.close()
    _say(f"wrote {args.out} ({n} leads)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from leadscore.evaluate import evaluate_labels, summary_lines

    con = db.connect()
    try:
        ev = evaluate_labels(con, args.labels, args.model)
    finally:
        con.close()
    for note in ev.notes:
        print(f"leadscore evaluate: warning: {note}", file=sys.stderr, flush=True)
    for line in summary_lines(ev):
        _say(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from leadscore.bench import run_bench

    sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    run_bench(sizes, repeats=args.repeats, out_dir=args.out, say=_say)
    return 0
