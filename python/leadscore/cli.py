"""The `leadscore` command: a thin layer that parses arguments and calls one step function.

Each step lives in its own module and is imported lazily so `leadscore --help` stays fast
(the ML libraries take seconds to import)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from collections.abc import Callable, Sequence

from leadscore import commands
from leadscore.errors import EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, LeadscoreError, save_traceback


def _prevalence_rate(value: str) -> float:
    """A positive rate strictly between 0 and 1 (`generate --score-prevalence`)."""
    try:
        p = float(value)
    except ValueError:
        p = math.nan
    if not 0.0 < p < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1), got {value!r}")
    return p


def _prevalence(value: str) -> float | str:
    """`--target-prevalence`: a rate as _prevalence_rate, or 'auto' to estimate it."""
    if value == "auto":
        return value
    try:
        return _prevalence_rate(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1) or 'auto', got {value!r}") from None


def _at_least(kind: type[int] | type[float], minimum: float, *, strict: bool = False,
              what: str = "") -> Callable[[str], int | float]:
    """An argparse `type=` for a number of `kind` (int: a whole number) that is >= `minimum`
    (> with `strict`), finite. A number the command cannot use is a bad command line (exit 2,
    argparse's usage error, README "Exit codes"), caught before the lock is taken and anything
    runs, not a failed run (exit 1) minutes later. One helper for every such bound, so each
    option's rule reads where the option is defined."""
    whole = kind is int
    if what:  # "at least 2 folds (a whole number)", "more than 0 seconds"
        expected = (f"{'more than' if strict else 'at least'} {minimum:,g} {what}"
                    + (" (a whole number)" if whole else ""))
    else:  # "a whole number of at least 1"
        expected = f"{'a whole number' if whole else 'a number'} {'over' if strict else 'of at least'} {minimum:,g}"

    def parse(value: str) -> int | float:
        try:
            n = kind(value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not math.isfinite(n) or n < minimum or (strict and n == minimum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return n

    return parse


_positive_int = _at_least(int, 1)
_seconds = _at_least(float, 0, strict=True, what="seconds")
_folds = _at_least(int, 2, what="folds")  # one fold leaves nothing to validate on


def _folder(value: str) -> Path:
    """`nightly --input DIR`: an existing folder. A crontab line with a wrong path is a bad
    command line (exit 2), not a failed night recorded in ops.nightly_runs."""
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder" + (" (it is a file)" if path.exists() else
                                                                          " (it does not exist)"))
    return path


def _sizes(value: str) -> list[int]:
    """`bench --sizes 64570,1000000`: comma-separated lead counts, each at least bench.MIN_SIZE."""
    from leadscore.bench import MIN_SIZE  # only when `bench` is parsed: bench imports psutil

    size = _at_least(int, MIN_SIZE, what="leads")
    sizes = [size(part) for part in value.split(",") if part.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected lead counts such as 64570,1000000, got {value!r}")
    return sizes


def _dbt_vars(value: str) -> str:
    """`--vars '{rare_min_count: 30}'`: checked to be a YAML mapping of vars dbt_project.yml
    declares, each of its default's kind (build.vars_problems: dbt would ignore an unknown name
    and fail partway through the build on a wrong kind), passed to `dbt build --vars` as given.
    `nightly --vars` uses it as its `type=`, `build` on the --vars among the dbt arguments it
    passes on (_build_vars)."""
    import yaml

    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{rare_min_count: 30}}', "
                                         f"got {value!r} ({' '.join(str(exc).split())[:120]})") from exc
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{rare_min_count: 30}}', got {value!r}")
    from leadscore.build import vars_problems

    problems = vars_problems(parsed)
    if problems:
        raise argparse.ArgumentTypeError("; ".join(problems))
    return value


def _build_vars(dbt_args: list[str]) -> None:
    """Check every `--vars YAML` / `--vars=YAML` among `leadscore build`'s dbt arguments with
    _dbt_vars, as `nightly --vars` is checked: argparse passes build's arguments on to dbt
    unparsed, so its `type=` cannot see them."""
    for i, arg in enumerate(dbt_args):
        if arg == "--vars":
            if i + 1 == len(dbt_args):
                raise argparse.ArgumentTypeError("expected a YAML mapping after --vars, got nothing")
            _dbt_vars(dbt_args[i + 1])
        elif arg.startswith("--vars="):
            _dbt_vars(arg.removeprefix("--vars="))


def _check_after_parsing(p: argparse.ArgumentParser, check: Callable[[argparse.Namespace], None],
                         argument: str | None = None) -> None:
    """Have main() run `check(args)` on `p`'s parsed command line, for what no `type=` sees (one
    of several arguments that must be given, build's pass-through dbt arguments); an
    ArgumentTypeError it raises becomes `p`'s usage error (exit 2), on `argument` when given,
    as a `type=` error is."""
    def run(args: argparse.Namespace) -> None:
        try:
            check(args)
        except argparse.ArgumentTypeError as exc:
            p.error(f"argument {argument}: {exc}" if argument else str(exc))

    p.set_defaults(check_arguments=run)


def _some_input_file(args: argparse.Namespace) -> None:
    """`leadscore ingest` needs at least one file, by flag or positional."""
    if not (args.train or args.score or args.files):
        raise argparse.ArgumentTypeError("nothing to load: give --train PATH, --score PATH or FILE")


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("leadscore")
    except PackageNotFoundError:
        from leadscore import __version__

        return __version__


def add_training_arguments(p: argparse._ActionsContainer, time_budget: float) -> None:
    """The training options `train` and `nightly` share (one definition, one parsing)."""
    p.add_argument("--time-budget", type=_seconds, default=time_budget,
                   help=f"seconds for tuning and the final fit (default: {time_budget:.0f})")
    p.add_argument("--trials", type=_positive_int, default=None, help="cap on Optuna trials per model")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--folds", type=_folds, default=5,
                   help="cross-validation folds, at least 2 (default: 5); random folds: at most dbt var "
                        "target_rate_folds; forward in time (dated leads): the last K time blocks, at most "
                        "dbt var validation_time_blocks - 1")
    p.add_argument("--ensemble", choices=["voting", "stacking"], default="voting", help="how to combine models (default: voting)")
    p.add_argument("--target-prevalence", type=_prevalence, default=None,
                   help="positive rate of the scoring population (e.g. 0.33), or 'auto' to estimate it")
    p.add_argument("--no-score-mix", dest="score_mix", action="store_false",
                   help="read the cutoff off the training rows as they are, even when the score rows hold "
                   "the largest customers in other shares (default: reweighted to the score rows' mix)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore",
        description="SQL-first feature store and nightly batch scoring for B2B lead conversion.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"leadscore {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write realistic demo train.csv and submission.csv",
                       description="Write DIR/train.csv and DIR/submission.csv in the competition "
                       "input format, with realistic messiness, deterministic by --seed.")
    p.set_defaults(func=commands.cmd_generate, writes=False)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--train-rows", type=_positive_int, default=59_299, help="labeled rows (default: 59299, as the real file)")
    p.add_argument("--score-rows", type=_positive_int, default=5_271, help="unlabeled rows (default: 5271)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--truth", type=Path, help="also write the score rows' true labels (id,is_converted) here")
    p.add_argument("--score-prevalence", type=_prevalence_rate, default=None,
                   help="positive rate of the score rows (default: as in train, ~8%%; the real test file was ~0.33)")
    p.add_argument("--score-drift", action="store_true",
                   help="score rows from a 'later form version': new spellings, fewer easy leads")
    p.add_argument("--schema", choices=("qualifier", "final"), default="qualifier",
                   help="qualifier: the 28 columns (default); final: also the final round's lead_date, "
                   "lead_description, customer_history, lead_from_channel, transfer_agreement, expected_budget")

    p = sub.add_parser("ingest", help="load competition-format CSV files into the database",
                       description="Load CSV files into raw tables, all in one transaction (a refused file "
                       "fails the command and nothing is written). In a --train file labeled rows train and "
                       "unlabeled rows are scored; every row of a --score file is scored and any labels in it "
                       "are set aside (raw.set_aside_labels), never trained on. A lead with an id already "
                       "loaded is not loaded again. A file already loaded (same sha256) is skipped. Rows "
                       "breaking a column rule go to raw.rejected_rows with a reason.",
                       epilog=EXIT_CODES_HELP)
    p.set_defaults(func=commands.cmd_ingest, writes=True)
    p.add_argument("--train", type=Path, action="append", default=[], help="labeled file (repeatable)")
    p.add_argument("--score", type=Path, action="append", default=[], help="file to score (repeatable)")
    p.add_argument("files", nargs="*", type=Path,
                   help="more files; role from the file: an 'id' column means a score file, none a training file")
    p.add_argument("--strict", action="store_true", help="fail the whole load if any row is rejected")
    p.add_argument("--parquet", action="store_true",
                   help="also write the raw and ops tables as Parquet for `dbt build --target spark` "
                   "(spark/sources beside the database, or LEADSCORE_SPARK_SOURCES)")
    _check_after_parsing(p, _some_input_file)

    p = sub.add_parser("build", help="run dbt build (same as running it by hand)",
                       description="Run `dbt build` on the leadscore dbt project; extra arguments are passed to dbt.")
    p.set_defaults(func=commands.cmd_build, writes=True)
    p.add_argument("dbt_args", nargs=argparse.REMAINDER,
                   help="extra dbt arguments, e.g. --select staging; --vars must be a YAML mapping")
    _check_after_parsing(p, lambda args: _build_vars(args.dbt_args), "--vars")

    p = sub.add_parser("train", help="train the baseline and the candidates that must beat it, register a model",
                       description="Cross-validate a fixed-parameter LightGBM baseline on split = 'train' rows of "
                       "fct_lead_features, then tune the linear member, LightGBM, XGBoost, ExtraTrees and "
                       "RandomForest (Optuna) and a soft-voting ensemble; a candidate replaces the baseline only "
                       "when it beats it on out-of-fold log-loss by more than the fold noise. The F1-optimal "
                       "cutoff is chosen out of fold and the model is registered: current when it is at least as "
                       "good as the current model on the same evidence (--promote), else a challenger.")
    p.set_defaults(func=commands.cmd_train, writes=True)
    add_training_arguments(p, time_budget=300.0)
    p.add_argument("--no-resume", action="store_true", help="start the Optuna studies afresh")
    p.add_argument("--baseline-only", action="store_true",
                   help="train only the fixed-parameter LightGBM baseline (fast, deterministic)")
    p.add_argument("--promote", choices=["auto", "always", "never"], default="auto",
                   help="auto (default): the new model becomes current only if it is at least as good as the "
                   "current one on the same evidence, else it is registered as a challenger")

    p = sub.add_parser("score", help="score unlabeled leads with the current model",
                       description="Score unlabeled leads not yet scored by the model and append the "
                       "scores to the history in one transaction.")
    p.set_defaults(func=commands.cmd_score, writes=True)
    p.add_argument("--model", help="model version (default: the current one)")
    p.add_argument("--all", action="store_true", help="rescore leads already scored by this model")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="leads per batch (default: score.BATCH_SIZE, 100000; up to three batches are in memory at once)")
    p.add_argument("--no-reasons", dest="reasons", action="store_false",
                   help="skip each lead's three reasons (TreeSHAP, about 80 predictions' worth of work per "
                   "lead): for rescoring millions of leads; the reason columns then say so")
    p.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                   help="duckdb (default); spark: read main.fct_lead_features from the Spark target "
                   "(`dbt build --target spark`) and score there with mapInPandas (pip install -e '.[spark]')")

    p = sub.add_parser("nightly", help="ingest, dbt build, train if needed, score, publish",
                       description="The nightly job: ingest new files in DIR, run dbt build, train if no "
                       "model exists (or --retrain), score, publish the serving snapshot, record the run. "
                       "Each file's role comes from the file (an 'id' column: score file; none: training "
                       "file). A file that cannot be loaded is quarantined (raw.loads, status 'refused', "
                       "with the reason; not retried until it changes), the rest of the run goes on and "
                       "the exit code is 3.",
                       epilog=EXIT_CODES_HELP)
    p.set_defaults(func=commands.cmd_nightly, writes=True)
    p.add_argument("--input", type=_folder, default=None, help="folder with new CSV files (default: data/raw)")
    p.add_argument("--retrain", action="store_true", help="train a new model even if one exists")
    p.add_argument("--vars", dest="dbt_vars", type=_dbt_vars, default=None, metavar="YAML",
                   help="dbt variables for this run's build, passed to `dbt build --vars` "
                   "(e.g. '{rare_min_count: 30}')")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="text (default): 'time LEVEL step: message' lines; json: one JSON object per line "
                   "(time, level, step, message, run_id), the final summary included")
    training = p.add_argument_group("training (when the run trains: no current model, or --retrain)")
    add_training_arguments(training, time_budget=120.0)

    p = sub.add_parser("publish", help="refresh the read-only serving snapshot under data/serving/",
                       description="Write the read-only copy analysts query while the nightly job holds the "
                       "main database: data/serving/leadscore.duckdb (scored_leads, call_list, the registry, "
                       "drift, ... with their dbt descriptions as comments) and scored_leads.parquet, swapped "
                       "in by an atomic rename; each new scoring run's history is written once as Parquet. "
                       "The nightly job runs it after scoring.")
    p.set_defaults(func=commands.cmd_publish, writes=True)

    p = sub.add_parser("export-submission", help="write id,is_converted for scored leads with an id",
                       description="Write the competition's submission format: one row per scored lead "
                       "that has an input id, is_converted 1 when the current model's probability is at "
                       "least its cutoff, else 0.")
    p.set_defaults(func=commands.cmd_export_submission, writes=False)
    p.add_argument("--out", type=Path, required=True, help="output CSV path")

    p = sub.add_parser("evaluate", help="measure a model's scores against outcomes learned later",
                       description="Join a CSV of id,is_converted (other columns ignored) to the scores of "
                       "the current (or given) model and report F1 at the model's cutoff, the best F1, AUC, "
                       "average precision, log-loss, Brier score and the share flagged against the actual "
                       "rate. Stored in ops.evaluations; report files under data/reports/evaluations/.")
    p.set_defaults(func=commands.cmd_evaluate, writes=True)
    p.add_argument("--labels", type=Path, required=True, help="CSV with id and is_converted (true/false, 1/0, 1.0/0.0 or yes/no)")
    p.add_argument("--model", help="model version (default: the current one)")

    p = sub.add_parser("models", help="list, show, compare, promote or roll back registered models",
                       description="The model registry as champion (the current model) and challengers.")
    p.set_defaults(func=commands.cmd_models, writes=False)
    models = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    def action(name: str, text: str) -> argparse.ArgumentParser:
        return models.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                                 epilog=EXIT_CODES_HELP)

    action("list", "every registered model, newest first, the current one marked")
    m = action("show", "one model's figures, selection and history")
    m.add_argument("version", nargs="?", help="model version (default: the current one)")
    m = action("compare", "two models side by side on the same evidence: out-of-fold log-loss on the same "
                          "training rows, or their scores of leads whose outcome is now known")
    m.add_argument("a", help="model version")
    m.add_argument("b", help="model version")
    m = action("promote", "make VERSION the current model (scoring and the views follow at once)")
    m.add_argument("version")
    m.set_defaults(writes=True)
    m = action("rollback", "make the model that was current before the latest change current again")
    m.set_defaults(writes=True)

    p = sub.add_parser("bench", help="time every stage at several sizes (see make bench)",
                       description="Run every stage as the nightly's own CLI command on generated data of "
                       "each size, in a temporary folder: wall time, throughput and peak memory beside DuckDB's "
                       "floor on the same data; the median of --repeats runs goes to a Markdown report in --out.")
    p.set_defaults(func=commands.cmd_bench, writes=False)
    p.add_argument("--sizes", type=_sizes, default="64570,1000000",
                   help="comma-separated lead counts, each at least 1,000 "
                   "(default: 64570,1000000; 64570 = the real 59,299 + 5,271)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="runs per stage; the median is reported")
    p.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    for command in sub.choices.values():  # every command's --help ends with the exit codes
        command.epilog = command.epilog or EXIT_CODES_HELP
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command != "build":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.dbt_args = [*unknown, *args.dbt_args]  # `leadscore build --select x` passes through
    if getattr(args, "check_arguments", None) is not None:  # exits 2 on a bad command line
        args.check_arguments(args)
    try:
        if args.writes:
            # Commands that write take the one lock (leadscore.runlock) before a step module is
            # imported, so a second writer is told "busy" (EXIT_BUSY) in milliseconds.
            from leadscore import runlock

            with runlock.exclusive(args.command):
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except LeadscoreError as exc:
        message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"leadscore {args.command}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"leadscore {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line for the user, the traceback in the log
        if os.environ.get("LEADSCORE_DEBUG"):
            raise
        where = save_traceback(args.command)
        message = " ".join(str(exc).split())[:300]
        print(
            f"leadscore {args.command}: error: unexpected {type(exc).__name__}: {message} "
            f"(a bug, not your input; traceback in {where}; LEADSCORE_DEBUG=1 shows it)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
