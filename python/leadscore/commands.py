"""What each CLI command does: open the database for as long as its step needs, call the step,
print the result's own summary.

Kept apart from cli.py so that argument parsing stays import-light: each step module is
imported inside its command, after the run lock is taken. Every result formats itself
(`summary()`), so a command and the nightly job print the same words for the same step.
The nightly job logs through the standard `logging` module; its format (text lines with time,
level and step, or one JSON object per line) is chosen here, once, by `logging_to_stdout`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from leadscore import config
from leadscore.errors import EXIT_FILES_REFUSED, LeadscoreError


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the nightly log ------------------------------------------------------------------------------
# Step modules log to the "leadscore" logger with the step in `extra` (nightly.py); the format is
# chosen here, once, by the command.

class TextLogFormatter(logging.Formatter):
    """`2026-11-21 23:15:02 INFO ingest: ...` (local time, as cron and journald users read it)."""

    def __init__(self) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        step = getattr(record, "step", None)
        head = f"{self.formatTime(record, self.datefmt)} {record.levelname} " + (f"{step}: " if step else "")
        return head + record.getMessage()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, local with offset), level, step, message, and the
    record's `run_id` and `data` when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "step": getattr(record, "step", None),
            "message": record.getMessage(),
        }
        for key in ("run_id", "data"):
            if getattr(record, key, None) is not None:
                entry[key] = getattr(record, key)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (pytest's capture, a redirect), flushed per line."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


@contextmanager
def logging_to_stdout(log_format: str = "text") -> Iterator[logging.Logger]:
    """Send the "leadscore" logger's records (INFO and up) to stdout in `log_format` while the
    command runs, then put the logger back as it was (commands also run in process, in tests)."""
    logger = logging.getLogger("leadscore")
    handler = _StdoutHandler()
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else TextLogFormatter())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # no second copy through a root handler someone configured
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


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
    if args.schema != "qualifier":
        kwargs["schema"] = args.schema
    try:
        result = generate(**kwargs)
    except OSError as exc:  # an output folder or file that cannot be written: name it, no traceback
        raise LeadscoreError(_cannot_write(exc, args.out)) from exc
    say(
        f"wrote {result['train_path']} ({result['train_rows']} rows, "
        f"{result['train_positive_rate']:.1%} converted) and {result['score_path']} "
        f"({result['score_rows']} rows) in {result['seconds']:.1f} s"
    )
    return 0


def _cannot_write(exc: OSError, default: Path) -> str:
    where = exc.filename if exc.filename is not None else default
    return f"cannot write {where}: {exc.strerror or exc}"


def _ingest_paths(args: argparse.Namespace) -> list[tuple[Path, str]]:
    files = [(p, "train") for p in args.train] + [(p, "score") for p in args.score]
    files += [(p, "auto") for p in args.files]
    if not files:
        raise LeadscoreError("nothing to load: give --train PATH and/or --score PATH")
    return files


def cmd_ingest(args: argparse.Namespace) -> int:
    from leadscore import db
    from leadscore.ingest import ingest_files

    files = _ingest_paths(args)
    path = config.db_path()
    existed = path.exists()
    try:
        with db.session() as con:
            results = ingest_files(con, files, strict=args.strict)
    except BaseException:
        if not existed:  # a failed first ingest leaves no empty database file behind
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    for r in results:
        (warn if r.status == "refused" else say)(r.summary())
        if r.status == "loaded" and r.message:
            warn(f"{r.path}: warning: {r.message}")
    if getattr(args, "parquet", False):
        from leadscore.spark import export_sources, sources_dir

        with db.session() as con:
            written = export_sources(con)
        say(f"wrote {len(written)} tables ({written.get('raw.leads', 0)} leads) as Parquet under {sources_dir()}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from leadscore.build import run_dbt

    extra = [a for a in args.dbt_args if a != "--"]
    result = run_dbt(["build", *extra])
    say(f"{result.summary()} ({config.db_path()})")
    return 0


def training_options(args: argparse.Namespace) -> dict:
    """The options cli.add_training_arguments defines, as `train_model` / `run_nightly` take them."""
    return {name: getattr(args, name) for name in
            ("time_budget", "trials", "seed", "folds", "ensemble", "target_prevalence", "score_mix")}


def cmd_train(args: argparse.Namespace) -> int:
    from leadscore import db
    from leadscore.train import train_model

    with db.session(create=False) as con:
        result = train_model(
            con,
            **training_options(args),
            resume=not args.no_resume,
            progress=True,
            baseline_only=args.baseline_only,
            promote=args.promote,
        )
    say(result.summary())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from leadscore import db
    from leadscore.score import score_leads

    if getattr(args, "engine", "duckdb") == "spark":
        from leadscore.spark import score_leads_spark

        with db.session(create=False) as con:
            result = score_leads_spark(con, args.model, rescore=args.all)
        say(result.summary())
        return 0
    with db.session(create=False) as con:
        result = score_leads(con, args.model, rescore=args.all, batch_size=args.batch_size, show_progress=True,
                             with_reasons=args.reasons)
    say(result.summary())
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from leadscore import db
    from leadscore.serving import publish

    with db.session(create=False) as con:
        result = publish(con)
    say(result.summary())
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    from leadscore.nightly import run_nightly

    input_dir = args.input if args.input is not None else config.project_root() / "data" / "raw"
    with logging_to_stdout(args.log_format) as log:
        result = run_nightly(
            input_dir,
            retrain=args.retrain,
            **training_options(args),
            dbt_vars=args.dbt_vars,
        )
        if args.log_format == "json":  # every line of the stream parses; the summary too
            log.info(result.summary(), extra={"step": "summary", "run_id": result.run_id, "data": result.as_dict()})
    if args.log_format != "json":  # the summary block stays as people read it, no time stamps
        say("")
        say(result.summary())
    if result.files_refused:
        for r in result.loads:
            if r.status == "refused":
                warn(f"leadscore nightly: warning: refused {r.path}: {r.message}")
        return EXIT_FILES_REFUSED
    return 0


def cmd_export_submission(args: argparse.Namespace) -> int:
    from leadscore import db
    from leadscore.serving import export_submission, unexported_ids

    with db.session(create=False) as con:
        n = export_submission(con, args.out)
        missing = unexported_ids(con)
    say(f"wrote {args.out} ({n} leads)")
    if missing:
        print(f"warning: {missing} unlabeled lead(s) with an id are not in it: ingested since the last "
              "`leadscore build`, or not scored by the current model yet (`leadscore build`, then "
              "`leadscore score`, then export again)", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from leadscore import db
    from leadscore.evaluate import evaluate_labels, summary_lines

    with db.session(create=False) as con:
        ev = evaluate_labels(con, args.labels, args.model)
    for note in ev.notes:
        warn(f"leadscore evaluate: warning: {note}")
    for line in summary_lines(ev):
        say(line)
    return 0


def _warn_other_feature_vars(con, version: str | None) -> None:
    """After a switch by hand: say so when the now current model was trained on features built
    with other dbt vars than the table has, which `leadscore score` will refuse."""
    from leadscore import features, registry

    differences = registry.settings_mismatch(con, version) if version else []
    if differences:
        print(f"warning: {version} was trained on features built with other dbt vars ({features.first_of(differences, 3)}): "
              "`leadscore score` refuses them until `leadscore build --vars ...` builds its own, and the "
              "next nightly run switches to a model that fits these features or trains one", file=sys.stderr)


def cmd_models(args: argparse.Namespace) -> int:
    from leadscore import db, promotion, registry

    if args.action in ("promote", "rollback"):
        with db.session(create=False) as con:
            if args.action == "promote":
                previous = registry.promote(con, args.version)
                say(f"{args.version} is the current model" + (f" (was {previous})" if previous != args.version else
                                                               " already"))
                say("main.scored_leads shows the current model's scores: `leadscore score` scores the leads it "
                    "has not scored yet")
            else:
                was, now = registry.rollback(con)
                say(f"rolled back: {now} is the current model again (was {was}); main.scored_leads shows its "
                    "scores (`leadscore score` for leads it has not scored yet)")
            _warn_other_feature_vars(con, registry.current_version(con))
        return 0
    with db.session(read_only=True) as con:
        if args.action == "list":
            lines = promotion.list_lines(con)
        elif args.action == "show":
            lines = promotion.show_lines(con, args.version)
        else:
            lines = promotion.compare_lines(con, args.a, args.b)
    for line in lines:
        say(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from leadscore.bench import run_bench

    run_bench(list(args.sizes), repeats=args.repeats, out_dir=args.out, say=say)
    return 0
