"""Quality benchmark (`make bench-quality`): the whole pipeline, as a new user runs it, on six worlds.

Every world gets its own temporary folder with `LEADSCORE_DB=<tmp>/<run>/leadscore.duckdb`, so
its database and models folder start empty, and runs the CLI as subprocesses:

    leadscore generate  (demo worlds) / a copy of the foreign files
    leadscore ingest --train train.csv --score submission.csv
    leadscore build
    leadscore train --time-budget B --seed 1 [--target-prevalence auto|<rate>]
    leadscore score
    leadscore evaluate --labels truth.csv

The worlds:

    a  demo       leadscore generate --seed 101
    b  drift      leadscore generate --seed 102 --score-drift
    c  foreign    <repo>/../shared/eval/foreign (train.csv only is trained on; truth.csv measures),
                  once with B and once with train's default budget (300 s; --skip-long skips it)
    d  demo 1:2   leadscore generate --seed 103 --score-prevalence 0.33, trained with
                  --target-prevalence auto and again with the truth's positive rate given
    e  foreign 1:2  foreign submission.csv subsampled (seed 0) by truth.csv to 1 positive per 2
                  negatives (choosing a test population is not fitting), written as a new
                  submission file; trained with auto and with the true rate given
    f  final round  leadscore generate --seed 106 --schema final: the six final-round columns
                  and lead dates, so training validates forward in time; its ablation's
                  use_final_round_features row is the qualifier columns only

After each training run the model is read back (`registry.load_model`) and every base model in
model.json is scored on the score rows (`LoadedModel.base_probabilities`, shifted to the model's
target prevalence when it has one, compared with the model's own `oof_cutoff`), as is the
model that was chosen (`predict_proba` against the registry cutoff; cross-checked against what
`leadscore evaluate` stored). The metric code is `leadscore.metrics.evaluate_scores`.

Ablation (worlds a, c and f): for each `use_*` var of dbt_project.yml, `leadscore build --vars
'{use_x: false}'` and `leadscore train --baseline-only --seed 1`, against the same baseline with
every family on. `use_group_keys` is left out: the baseline never reads the group keys (only the
linear member does), so the main table's linear-member row is where their worth shows.

    .venv/bin/python bench/quality.py [--worlds a,b,c,d,e,f] [--budget 120] [--skip-long]
        [--out bench/results] [--ablation/--no-ablation] [--families use_x,use_y] [--keep]

Missing keys in model.json (an older train.py) show as n/a; a failed CLI step is reported in
the results and the exit code is 1. A FAIL of a "Must show" condition is printed, never hidden.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

import numpy as np
from leadscore.metrics import BOOTSTRAP_RESAMPLES, evaluate_scores, f1_intervals

SEED = 1
DEFAULT_BUDGET = 120.0
LONG_BUDGET = 300.0          # `leadscore train`'s default
SMALL_TRAIN_ROWS = 3000
SMALL_SCORE_ROWS = 600
BASELINE = "lightgbm_baseline"
# Must show (issue 9)
OOF_GAP_MAX = 0.03
FLAG_RATIO = (0.8, 1.25)
PREVALENCE_ERR_MAX = 0.03
F1_VS_GIVEN_MAX = 0.01
FOREIGN_F1_MIN = 0.65
# how far apart two F1 figures on a few thousand score rows fall by chance: metrics.f1_intervals,
# a bootstrap of the score rows (the checks stay strict; the interval is printed beside them)

WORLD_NAMES = {"a": "demo", "b": "drift", "c": "foreign", "d": "demo 1:2", "e": "foreign 1:2", "f": "final round"}


# ------------------------------------------------------------------------------ small helpers


def say(message: str) -> None:
    print(message, flush=True)


def foreign_dir() -> Path:
    return (REPO / ".." / "shared" / "eval" / "foreign").resolve()


def leadscore_cmd() -> list[str]:
    script = Path(sys.executable).with_name("leadscore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "leadscore.cli"]


class StepFailed(RuntimeError):
    pass


@dataclass
class Runner:
    """Runs `leadscore ...` with one database; keeps a log of everything it printed."""

    db: Path
    log: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def __call__(self, *args: str, step: str | None = None) -> str:
        env = dict(os.environ, LEADSCORE_DB=str(self.db), LEADSCORE_HOME=str(REPO))
        env.pop("LEADSCORE_DEBUG", None)
        cmd = [*leadscore_cmd(), *args]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        name = step or args[0]
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        output = proc.stdout + proc.stderr
        with self.log.open("a") as fh:
            fh.write(f"$ LEADSCORE_DB={self.db} {' '.join(cmd)}\n{output}\n[exit {proc.returncode}, {elapsed:.1f} s]\n\n")
        if proc.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise StepFailed(f"`leadscore {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
        say(f"    leadscore {' '.join(args)}: {elapsed:.1f} s")
        return output


def read_truth(path: Path) -> dict[int, int]:
    out: dict[int, int] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            out[int(float(row["id"]))] = 1 if row["is_converted"].strip().lower() in ("1", "true", "1.0") else 0
    return out


def subsample_csv(src: Path, dst: Path, keep: int, seed: int) -> None:
    """Copy `keep` random rows (seed) of a CSV, in file order, fields verbatim."""
    with src.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(rows), size=min(keep, len(rows)), replace=False))
    with dst.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows[i] for i in chosen)


def write_one_to_two(submission: Path, truth: Path, out_sub: Path, out_truth: Path, seed: int = 0) -> None:
    """Every positive of the score file and twice as many negatives (chosen with `seed`), rows in
    file order; the matching truth rows beside it. Picks a test population, fits nothing."""
    labels = read_truth(truth)
    with submission.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    id_at = header.index("id")
    ids = [int(float(r[id_at])) for r in rows]
    pos = [i for i, x in enumerate(ids) if labels.get(x) == 1]
    neg = [i for i, x in enumerate(ids) if labels.get(x) == 0]
    rng = np.random.default_rng(seed)
    n_neg = min(len(neg), 2 * len(pos))
    keep_neg = rng.choice(len(neg), size=n_neg, replace=False)
    keep = sorted(pos + [neg[i] for i in keep_neg])
    with out_sub.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows[i] for i in keep)
    with truth.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        theader = next(reader)
        trows = list(reader)
    tid = theader.index("id")
    wanted = {ids[i] for i in keep}
    with out_truth.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(theader)
        w.writerows(r for r in trows if int(float(r[tid])) in wanted)


# --------------------------------------------------------------------------- the worlds


@dataclass
class RunSpec:
    key: str                       # folder name and label
    label: str                     # shown in the tables
    budget: float
    prevalence: str | None = None  # None, "auto" or "truth" (the truth's positive rate given)


@dataclass
class World:
    key: str
    name: str
    runs: list[RunSpec]
    ablation: bool = False
    prevalence_world: bool = False


@dataclass
class Data:
    train: Path
    score: Path
    truth: Path
    truth_rate: float
    note: str


def prepare_data(world: World, folder: Path, small: bool, run: Runner) -> Data:
    folder.mkdir(parents=True, exist_ok=True)
    size = ["--train-rows", str(SMALL_TRAIN_ROWS), "--score-rows", str(SMALL_SCORE_ROWS)] if small else []
    if world.key in ("a", "b", "d", "f"):
        extra = {"a": ["--seed", "101"], "b": ["--seed", "102", "--score-drift"],
                 "d": ["--seed", "103", "--score-prevalence", "0.33"],
                 "f": ["--seed", "106", "--schema", "final"]}[world.key]
        run("generate", "--out", str(folder), "--truth", str(folder / "truth.csv"), *extra, *size)
        train, score, truth = folder / "train.csv", folder / "submission.csv", folder / "truth.csv"
        note = "leadscore generate " + " ".join(extra) + (" (small)" if small else "")
    else:
        src = foreign_dir()
        train, score, truth = src / "train.csv", src / "submission.csv", src / "truth.csv"
        note = str(src)
        if small:  # development only: a deterministic slice of the foreign files
            subsample_csv(train, folder / "train.csv", SMALL_TRAIN_ROWS, seed=0)
            subsample_csv(score, folder / "submission.csv", SMALL_SCORE_ROWS, seed=0)
            train, score = folder / "train.csv", folder / "submission.csv"
            note += f" (small: {SMALL_TRAIN_ROWS} train / {SMALL_SCORE_ROWS} score rows, seed 0)"
        if world.key == "e":
            write_one_to_two(score, truth, folder / "submission_1to2.csv", folder / "truth_1to2.csv", seed=0)
            score, truth = folder / "submission_1to2.csv", folder / "truth_1to2.csv"
            note += "; submission subsampled by truth.csv to 1 positive : 2 negatives (seed 0)"
    labels = read_truth(truth)
    with score.open(newline="", encoding="utf-8") as fh:
        score_ids = {int(float(r["id"])) for r in csv.DictReader(fh)}
    y = [v for k, v in labels.items() if k in score_ids]
    return Data(train=train, score=score, truth=truth, truth_rate=sum(y) / len(y), note=note)


# ------------------------------------------------------------------------------ measuring


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _metrics(y: np.ndarray, p: np.ndarray, cutoff: float | None) -> dict[str, Any]:
    r = evaluate_scores(y, p, 0.5 if cutoff is None else cutoff)
    out = {"best_f1": r.best_f1, "auc": r.auc, "actual_share": r.actual_positive_rate,
           "average_precision": r.average_precision, "log_loss": r.log_loss}
    if cutoff is None:
        out.update(cutoff=None, f1=None, flagged_share=None, flagged_ratio=None)
    else:
        out.update(cutoff=cutoff, f1=r.f1, flagged_share=r.flagged_share, flagged_ratio=r.flagged_ratio)
    return out


def _leadscore_attr(name: str, modules: tuple[str, ...] = ("registry", "model", "operating_point")) -> Any:
    """`registry.<name>`, or wherever the train.py/registry.py split moved it."""
    import importlib

    for module in modules:
        try:
            found = getattr(importlib.import_module(f"leadscore.{module}"), name, None)
        except ImportError:
            found = None
        if found is not None:
            return found
    raise RuntimeError(f"leadscore has no {name} in {', '.join(modules)}")


def newest_version(db_path: Path) -> str:
    """The model the last `leadscore train` registered, current or not. A retrain on the same
    training rows that does not beat the current model out of fold stays a challenger
    (leadscore.promotion), so "the current model" is not always the one just trained."""
    from leadscore import db

    con = db.connect(db_path, read_only=True)
    try:
        models = _leadscore_attr("list_models")(con)  # newest first
    finally:
        con.close()
    if not models:
        raise RuntimeError(f"{db_path}: no model registered")
    return str(models[0]["model_version"])


def measure(db_path: Path, truth: dict[int, int], version: str | None = None) -> dict[str, Any]:
    """Read a model back (`version`, else the newest registered) and score every base model and
    the chosen one on the score rows."""
    from leadscore import db, features
    from leadscore.evaluate import latest_evaluation

    load_model = _leadscore_attr("load_model")
    shift_prior = _leadscore_attr("shift_prior")
    version = version or newest_version(db_path)
    con = db.connect(db_path, read_only=True)
    try:
        model = load_model(con, version)
        meta = model.meta
        cur = con.execute("select * from main.model_registry where model_version = ?", [model.version])
        reg = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
        df = features.load_split(con, "score", model.encoding.features)
        evaluation = latest_evaluation(con, model.version)
    finally:
        con.close()
    keep = df["id"].isin(truth.keys()).to_numpy()
    df = df.loc[keep].reset_index(drop=True)
    y = np.array([truth[int(i)] for i in df["id"]], dtype=np.int64)
    notes: list[str] = []

    per_model = reg.get("per_model_metrics")
    per_model = json.loads(per_model) if isinstance(per_model, str) else (per_model or {})
    target = _num(meta.get("target_prevalence"))
    pi = float(meta["train_positive_rate"])
    base = model.base_probabilities(df)
    rows: list[dict[str, Any]] = []
    train_seconds = _num(reg.get("train_seconds"))
    flagged: dict[str, np.ndarray] = {}
    for m in meta.get("models", []):
        name = m["name"]
        p = base[name]
        if target is not None:
            p = shift_prior(p, pi, target)
        cutoff = _num(m.get("oof_cutoff"))
        if cutoff is not None:
            flagged[name] = p >= cutoff
        oof_f1 = _num(m.get("oof_f1"))
        if oof_f1 is None and target is None:  # older model.json: per_model_metrics of the registry
            oof_f1 = _num(per_model.get(name, {}).get("oof_f1"))
        rows.append({"model": name, "role": "baseline" if name == BASELINE else "tuned", "kind": m.get("kind"),
                     **_metrics(y, p, cutoff), "oof_f1": oof_f1, "oof_log_loss": _num(m.get("oof_log_loss")),
                     "oof_average_precision": _num(m.get("oof_average_precision")),
                     "train_seconds": train_seconds})
    if not any(r["model"] == BASELINE for r in rows):
        notes.append(f"model.json has no {BASELINE} model")
    if any(r["f1"] is None for r in rows):
        notes.append("some base models have no oof_cutoff in model.json: their F1 at own cutoff is n/a")

    selection = meta.get("selection") or {}
    chosen_name = selection.get("chosen") or "ensemble"
    p_chosen = model.predict_proba(df)
    chosen = {"model": f"chosen: {chosen_name}", "role": "chosen", "kind": chosen_name,
              **_metrics(y, p_chosen, model.cutoff), "oof_f1": _num(reg.get("cv_f1")),
              "oof_log_loss": _num(selection.get("chosen_oof_log_loss")),
              "oof_average_precision": _num(reg.get("cv_average_precision")), "train_seconds": train_seconds}
    chosen["intervals"] = f1_intervals(y, p_chosen >= model.cutoff, flagged.get(BASELINE))
    rows.append(chosen)
    if evaluation is None:
        notes.append("leadscore evaluate stored no evaluation")
    else:
        ev_f1 = _num(evaluation.get("f1_at_cutoff"))
        if ev_f1 is None or abs(ev_f1 - chosen["f1"]) > 1e-9 or evaluation.get("rows_matched") != len(y):
            notes.append(f"leadscore evaluate says F1 {ev_f1} on {evaluation.get('rows_matched')} rows, "
                         f"the benchmark {chosen['f1']:.6f} on {len(y)} rows")
    estimate = meta.get("prevalence_estimate") or {}
    if not estimate and meta.get("target_prevalence_mode") == "auto":
        estimate = {"method": "n/a", "estimate": meta.get("target_prevalence")}
    return {
        "model_version": model.version,
        "score_rows": len(y),
        "features": len(model.encoding.features),
        "train_positive_rate": pi,
        "target_prevalence": target,
        "target_prevalence_mode": meta.get("target_prevalence_mode"),
        "prevalence_estimate": estimate or None,
        "selection": selection or None,
        "chosen": chosen_name,
        "train_seconds": train_seconds,
        "time_budget": _num(reg.get("time_budget")),
        "evaluate": None if evaluation is None else {
            k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in evaluation.items()},
        "rows": rows,
        "notes": notes,
    }


# -------------------------------------------------------------------------------- running


def train_args(spec: RunSpec, data: Data, extra: list[str] | None = None) -> list[str]:
    args = ["train", "--time-budget", f"{spec.budget:g}", "--seed", str(SEED)]
    if spec.prevalence == "auto":
        args += ["--target-prevalence", "auto"]
    elif spec.prevalence == "truth":
        args += ["--target-prevalence", f"{data.truth_rate:.6f}"]
    return args + (extra or [])


def run_pipeline(spec: RunSpec, data: Data, folder: Path, log: Path) -> tuple[Runner, dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    run = Runner(folder / "leadscore.duckdb", log)
    run("ingest", "--train", str(data.train), "--score", str(data.score))
    run("build")
    run(*train_args(spec, data), step="train")
    run("score")
    run("evaluate", "--labels", str(data.truth))
    result = measure(run.db, read_truth(data.truth))
    result["wall_seconds"] = {k: round(v, 1) for k, v in run.seconds.items()}
    return run, result


# families the fixed baseline never reads: switching one off cannot move a baseline-only row, so
# their worth is read from the main table instead (use_group_keys: the linear member's row)
NOT_BASELINE_FAMILIES = ("use_group_keys",)


def use_vars() -> list[str]:
    import yaml

    project = yaml.safe_load((REPO / "dbt_project.yml").read_text()) or {}
    return [k for k in (project.get("vars") or {}) if str(k).startswith("use_") and k not in NOT_BASELINE_FAMILIES]


def has_baseline_only() -> bool:
    proc = subprocess.run([*leadscore_cmd(), "train", "--help"], capture_output=True, text=True, cwd=REPO, check=False)
    return "--baseline-only" in proc.stdout


def ablation(run: Runner, data: Data, budget: float, families: list[str]) -> list[dict[str, Any]]:
    """Baseline-only models with every family on, then with each family off, in the world's database."""
    truth = read_truth(data.truth)
    out: list[dict[str, Any]] = []
    for family in [None, *families]:
        label = "all on" if family is None else f"{family}: false"
        try:
            if family is not None:
                # dbt's unit tests check the SQL on fixtures (each pins the families it needs), not
                # this data: left out, as in the nightly's build
                run("build", "--vars", f"{{{family}: false}}", "--exclude", "test_type:unit", step=f"build {family}")
            run("train", "--baseline-only", "--time-budget", f"{budget:g}", "--seed", str(SEED),
                step=f"train baseline {label}")
            m = measure(run.db, truth)
            row = next((r for r in m["rows"] if r["model"] == BASELINE), None) or next(r for r in m["rows"] if r["role"] == "chosen")
            out.append({"family": label, "features": m["features"], **{k: row.get(k) for k in (
                "f1", "best_f1", "auc", "oof_f1", "oof_log_loss", "flagged_ratio")}, "error": None})
        except Exception as exc:  # noqa: BLE001 - one family failing must not hide the others
            out.append({"family": label, "error": str(exc)})
            say(f"    ablation {label}: FAILED: {exc}")
    return out


def worlds_for(keys: list[str], budget: float, skip_long: bool) -> list[World]:
    b = f"{budget:g} s"
    table = {
        "a": World("a", "demo", [RunSpec("b", b, budget)], ablation=True),
        "b": World("b", "drift", [RunSpec("b", b, budget)]),
        "c": World("c", "foreign", [RunSpec("b", b, budget)]
                   + ([] if skip_long else [RunSpec("long", f"{LONG_BUDGET:g} s (default)", LONG_BUDGET)]),
                   ablation=True),
        "d": World("d", "demo 1:2", [RunSpec("auto", f"auto, {b}", budget, "auto"),
                                     RunSpec("given", f"true prevalence given, {b}", budget, "truth")],
                   prevalence_world=True),
        "e": World("e", "foreign 1:2", [RunSpec("auto", f"auto, {b}", budget, "auto"),
                                        RunSpec("given", f"true prevalence given, {b}", budget, "truth")],
                   prevalence_world=True),
        # the final round's columns and dates: forward-in-time validation; the ablation's
        # use_final_round_features row is the qualifier columns only
        "f": World("f", "final round", [RunSpec("b", b, budget)], ablation=True),
    }
    return [table[k] for k in keys]


def run_world(world: World, args: argparse.Namespace, work: Path, families: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"key": world.key, "name": world.name, "runs": [], "ablation": None, "errors": [],
                           "skipped": None}
    if world.key in ("c", "e") and not all((foreign_dir() / f).is_file() for f in ("train.csv", "submission.csv", "truth.csv")):
        out["skipped"] = f"{foreign_dir()} (train.csv, submission.csv, truth.csv) not found"
        say(f"world {world.key} ({world.name}): SKIPPED: {out['skipped']}")
        return out
    folder = work / f"world-{world.key}"
    folder.mkdir(parents=True)
    log = folder / "commands.log"
    out["log"] = str(log)
    say(f"world {world.key} ({world.name}) in {folder}")
    try:
        data = prepare_data(world, folder / "data", args.small, Runner(folder / "data" / "unused.duckdb", log))
    except Exception as exc:  # noqa: BLE001 - reported, the other worlds go on
        out["errors"].append(f"preparing the data: {exc}")
        say(f"  FAILED preparing the data: {exc}")
        return out
    out.update(data=data.note, truth_rate=data.truth_rate, train_file=str(data.train), score_file=str(data.score))
    say(f"  data: {data.note}; truth positive rate of the score rows {data.truth_rate:.4f}")
    first_runner: Runner | None = None
    for spec in world.runs:
        say(f"  run {spec.label}")
        started = time.perf_counter()
        try:
            runner, result = run_pipeline(spec, data, folder / spec.key, log)
        except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
            out["errors"].append(f"run {spec.label}: {exc}")
            say(f"  run {spec.label}: FAILED: {exc}")
            continue
        first_runner = first_runner or runner
        result.update(key=spec.key, label=spec.label, budget=spec.budget, prevalence=spec.prevalence,
                      given_prevalence=data.truth_rate if spec.prevalence == "truth" else None,
                      seconds=round(time.perf_counter() - started, 1))
        out["runs"].append(result)
        ch = result["rows"][-1]
        say(f"  run {spec.label}: chosen {result['chosen']}, F1 {fmt(ch['f1'])} at own cutoff, "
            f"best {fmt(ch['best_f1'])}, AUC {fmt(ch['auc'])}, OOF F1 {fmt(ch['oof_f1'])}, "
            f"flagged {fmt_ratio(ch)}, trained {fmt(result['train_seconds'], 1)} s")
        for note in result["notes"]:
            say(f"    note: {note}")
    if world.ablation and args.ablation and first_runner is not None:
        if not families:
            out["ablation_skipped"] = "dbt_project.yml has no use_* vars: no feature family can be switched off"
        elif not has_baseline_only():
            out["ablation_skipped"] = "`leadscore train` has no --baseline-only option yet"
        else:
            say(f"  ablation: {', '.join(families)} (baseline only, seed {SEED})")
            out["ablation"] = ablation(first_runner, data, args.budget, families)
        if out.get("ablation_skipped"):
            say(f"  ablation skipped: {out['ablation_skipped']}")
    return out


# ------------------------------------------------------------------------------ the checks


def _check(ok: bool | None, detail: str) -> dict[str, Any]:
    return {"status": "n/a" if ok is None else ("PASS" if ok else "FAIL"), "detail": detail}


def checks(world: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's Must show conditions, one row per training run of the world."""
    out = []
    given = next((r for r in world["runs"] if r["prevalence"] == "truth"), None)
    for run in world["runs"]:
        rows = {r["model"]: r for r in run["rows"]}
        chosen = run["rows"][-1]
        baseline = rows.get(BASELINE)
        c: dict[str, Any] = {"world": f"{world['key']} {world['name']}", "run": run["label"], "chosen": run["chosen"]}
        if baseline is None or baseline["f1"] is None or chosen["f1"] is None:
            c["chosen_vs_baseline"] = _check(None, "no baseline F1 at own cutoff")
        else:
            ci = (chosen.get("intervals") or {}).get("diff_ci95")
            c["chosen_vs_baseline"] = _check(
                chosen["f1"] >= baseline["f1"], f"{chosen['f1']:.3f} vs {baseline['f1']:.3f}"
                + ("" if not ci else f" (difference 95% {ci[0]:+.3f} to {ci[1]:+.3f})"))
        if chosen["f1"] is None or chosen["oof_f1"] is None:
            c["score_vs_oof"] = _check(None, "n/a")
        else:
            gap = chosen["f1"] - chosen["oof_f1"]
            c["score_vs_oof"] = _check(abs(gap) <= OOF_GAP_MAX, f"{gap:+.3f}")
        ratio = chosen.get("flagged_ratio")
        c["flagged_ratio"] = _check(None if ratio is None else FLAG_RATIO[0] <= ratio <= FLAG_RATIO[1],
                                    "n/a" if ratio is None else f"{ratio:.2f}x")
        if run["prevalence"] == "auto":
            est = _num((run.get("prevalence_estimate") or {}).get("estimate"))
            truth = world["truth_rate"]
            c["prevalence"] = _check(None if est is None else abs(est - truth) <= PREVALENCE_ERR_MAX,
                                     "n/a" if est is None else f"{est:.3f} vs {truth:.3f} ({est - truth:+.3f})")
            g = None if given is None else given["rows"][-1]["f1"]
            c["f1_vs_given"] = _check(None if g is None or chosen["f1"] is None else abs(chosen["f1"] - g) <= F1_VS_GIVEN_MAX,
                                      "n/a" if g is None or chosen["f1"] is None else f"{chosen['f1']:.3f} vs {g:.3f} ({chosen['f1'] - g:+.3f})")
        else:
            c["prevalence"] = _check(None, "")
            c["f1_vs_given"] = _check(None, "")
        if world["key"] == "c":
            ci = (chosen.get("intervals") or {}).get("f1_ci95")
            c["foreign_f1"] = _check(None if chosen["f1"] is None else chosen["f1"] >= FOREIGN_F1_MIN,
                                     "n/a" if chosen["f1"] is None else f"{chosen['f1']:.3f}"
                                     + ("" if not ci else f" (95% {ci[0]:.3f} to {ci[1]:.3f})"))
        else:
            c["foreign_f1"] = _check(None, "")
        out.append(c)
    for err in world["errors"]:  # a run that failed passes nothing
        out.append({"world": f"{world['key']} {world['name']}", "run": f"ERROR: {err.splitlines()[0][:150]}",
                    "chosen": "", **{k: _check(False, "(no result)") for k in CHECK_COLUMNS}})
    return out


CHECK_COLUMNS = {
    "chosen_vs_baseline": "chosen >= baseline (F1 at own cutoff)",
    "score_vs_oof": f"score F1 - OOF F1 within {OOF_GAP_MAX}",
    "flagged_ratio": f"flagged / actual in {FLAG_RATIO[0]}-{FLAG_RATIO[1]}",
    "prevalence": f"prevalence within {PREVALENCE_ERR_MAX}",
    "f1_vs_given": f"F1 within {F1_VS_GIVEN_MAX} of true-prevalence run",
    "foreign_f1": f"foreign F1 >= {FOREIGN_F1_MIN}",
}


# ------------------------------------------------------------------------------- reporting


def fmt(x: Any, digits: int = 3) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{v:.{digits}f}"


def fmt_ratio(row: dict[str, Any]) -> str:
    if row.get("flagged_share") is None:
        return "n/a"
    ratio = "" if row.get("flagged_ratio") is None else f" ({row['flagged_ratio']:.2f}x)"
    return f"{row['flagged_share']:.1%} / {row['actual_share']:.1%}{ratio}"


def fmt_estimate(run: dict[str, Any], truth_rate: float) -> str:
    est = run.get("prevalence_estimate") or {}
    if run["prevalence"] == "truth":
        return f"given {truth_rate:.3f}"
    if run["prevalence"] != "auto":
        return ""
    e, se = _num(est.get("estimate")), _num(est.get("stderr"))
    lo, hi = _num(est.get("ci_low")), _num(est.get("ci_high"))
    text = "n/a" if e is None else f"{e:.3f}"
    text += f" ± {se:.3f}" if se is not None else " ± n/a"
    if lo is not None and hi is not None:
        text += f" [{lo:.3f}, {hi:.3f}]"
    if est.get("method"):
        check = _num(est.get("fit_p_value"))
        text += f" ({est['method']}" + ("" if check is None else
                                        f"; label-shift check p {check:.2g}"
                                        + ("" if est.get("label_shift_holds", True) else ", fails")) + ")"
    return text + f", truth {truth_rate:.3f}"


def to_markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    m = info["machine"]
    lines = [
        f"leadscore quality benchmark, {info['when']}, commit {info['commit']}: {m['cores']} cores, "
        f"{m['memory_gib']} GiB; `leadscore train --time-budget {info['budget']:g} --seed {SEED}`"
        + (" — SMALL development run (3,000 train / 600 score rows), not a result" if info["small"] else ""),
        "",
        ("F1 at own cutoff: on the score rows against the truth, each model at the cutoff it chose out of "
         "fold (the chosen model at the registry cutoff, as `leadscore score` flags). Best F1: at the best "
         "cutoff on the score rows (not reachable without the truth). Flagged: share of score rows flagged / "
         "actual positive share. OOF F1: out of fold on the training rows, at the model's operating "
         "prevalence, reweighted to the score rows' customer mix where training did (see Worlds). Train s: the registry's train_seconds of the run (one value per run)."),
        "",
        ("| world | run | model | F1 own cutoff | best F1 | AUC | flagged / actual | OOF F1 | train s "
         "| prevalence estimate ± se (truth) | F1, true prevalence given |"),
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for w in results:
        given = next((r for r in w["runs"] if r["prevalence"] == "truth"), None)
        given_rows = {} if given is None else {r["model"] if r["role"] != "chosen" else "chosen": r for r in given["rows"]}
        for run in w["runs"]:
            est = fmt_estimate(run, w["truth_rate"])
            for r in run["rows"]:
                g = ""
                if run["prevalence"] == "auto":
                    gr = given_rows.get("chosen" if r["role"] == "chosen" else r["model"])
                    g = fmt(None if gr is None else gr["f1"])
                model = f"**{r['model']}**" if r["role"] == "chosen" else r["model"]
                lines.append(
                    f"| {w['key']} {w['name']} | {run['label']} | {model} | {fmt(r['f1'])} | {fmt(r['best_f1'])} "
                    f"| {fmt(r['auc'])} | {fmt_ratio(r)} | {fmt(r['oof_f1'])} | {fmt(r['train_seconds'], 0)} "
                    f"| {est if r['role'] == 'chosen' else ''} | {g} |")
        if w.get("skipped"):
            lines.append(f"| {w['key']} {w['name']} | SKIPPED: {w['skipped']} | | | | | | | | | |")
        for err in w["errors"]:
            lines.append(f"| {w['key']} {w['name']} | ERROR: {err.splitlines()[0][:150]} | | | | | | | | | |")

    lines += ["", "Must show (issue 9), per training run. In brackets, from "
              f"{BOOTSTRAP_RESAMPLES} bootstrap resamples of the score rows: the 95% interval of the chosen "
              "model's F1 minus the baseline's on the same leads (paired), and of the foreign F1; the checks "
              "themselves compare the point figures.", "",
              "| world | run | chosen | " + " | ".join(CHECK_COLUMNS.values()) + " |",
              "| --- | --- | --- |" + " --- |" * len(CHECK_COLUMNS)]
    fails = 0
    for w in results:
        for c in checks(w):
            cells = []
            for k in CHECK_COLUMNS:
                s = c[k]
                fails += s["status"] == "FAIL"
                cells.append("" if s["status"] == "n/a" and not s["detail"] else
                             (f"**FAIL** {s['detail']}" if s["status"] == "FAIL" else f"{s['status']} {s['detail']}".strip()))
            lines.append(f"| {c['world']} | {c['run']} | {c['chosen']} | " + " | ".join(cells) + " |")
    lines += ["", f"{fails} FAIL(s)." if fails else "Every condition that could be checked passed."]

    abl = [w for w in results if w.get("ablation") or w.get("ablation_skipped")]
    if abl:
        lines += ["", (f"Feature-family ablation: `leadscore build --vars '{{use_x: false}}'`, then "
                       f"`leadscore train --baseline-only --seed {SEED}` (the fixed-parameter LightGBM), against "
                       "the same with every family on (the ablation builds leave out dbt's unit tests, as the "
                       "nightly does). Δ against all on."), "",
                  "| world | features | feature columns | F1 own cutoff | ΔF1 | best F1 | AUC | OOF F1 | OOF log-loss | Δ log-loss |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for w in abl:
            if w.get("ablation_skipped"):
                lines.append(f"| {w['key']} {w['name']} | skipped: {w['ablation_skipped']} | | | | | | | | |")
                continue
            ref = next((a for a in w["ablation"] if a["family"] == "all on" and not a.get("error")), None)
            for a in w["ablation"]:
                if a.get("error"):
                    lines.append(f"| {w['key']} {w['name']} | {a['family']} | | ERROR: {a['error'].splitlines()[0][:120]} | | | | | | |")
                    continue

                def delta(k: str, digits: int = 3, a=a, ref=ref) -> str:
                    if ref is None or a is ref or _num(a.get(k)) is None or _num(ref.get(k)) is None:
                        return ""
                    return f"{a[k] - ref[k]:+.{digits}f}"

                lines.append(f"| {w['key']} {w['name']} | {a['family']} | {a['features']} | {fmt(a['f1'])} | {delta('f1')} "
                             f"| {fmt(a['best_f1'])} | {fmt(a['auc'])} | {fmt(a['oof_f1'])} "
                             f"| {fmt(a['oof_log_loss'], 4)} | {delta('oof_log_loss', 4)} |")

    notes = []
    for w in results:
        if w.get("data"):
            notes.append(f"- {w['key']} {w['name']}: {w['data']}; truth positive rate of the score rows "
                         f"{w['truth_rate']:.4f}")
        for run in w["runs"]:
            sel = run.get("selection") or {}
            if sel:
                notes.append(f"  - {run['label']}: chosen {sel.get('chosen')}; OOF log-loss baseline "
                             f"{fmt(sel.get('baseline_oof_log_loss'), 4)}, chosen {fmt(sel.get('chosen_oof_log_loss'), 4)}, "
                             f"gain {fmt(sel.get('gain'), 4)}, noise {fmt(sel.get('noise'), 4)}"
                             + (f"; {sel['reason']}" if sel.get("reason") else ""))
            mix = (sel.get("validation") or {}).get("score_mix") or {}
            if mix.get("applied"):
                notes.append(f"  - {run['label']}: the operating point reweighted to the score rows' customer mix "
                             f"(chi-square p {mix['p_value']:.2g}; " + ", ".join(
                                 f"{m['key']} {m['train_rows']} -> {m['score_rows']} rows, x{m['weight']:.2f}"
                                 for m in mix["strata"]) + ")")
            for note in run["notes"]:
                notes.append(f"  - {run['label']}: {note}")
    lines += ["", "Worlds:", "", *notes, "", f"Total wall time {info['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=REPO, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=REPO, check=True).stdout.strip()
        return sha + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", default="a,b,c,d,e,f", help="comma-separated worlds (default: a,b,c,d,e,f)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                        help=f"--time-budget of every training run (default: {DEFAULT_BUDGET:g})")
    parser.add_argument("--skip-long", action="store_true",
                        help=f"skip world c's run with train's default budget ({LONG_BUDGET:g} s)")
    parser.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=True,
                        help="feature-family ablation on worlds a, c and f (default: on)")
    parser.add_argument("--families", default=None,
                        help="comma-separated use_* vars the ablation switches off (default: every one "
                             "in dbt_project.yml)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (databases, logs)")
    parser.add_argument("--small", action="store_true", help=argparse.SUPPRESS)  # development: tiny worlds
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.worlds.split(",") if k.strip()]
    unknown = [k for k in keys if k not in WORLD_NAMES]
    if unknown or not keys:
        parser.error(f"unknown world(s) {', '.join(unknown) or '(none)'}: choose from {','.join(WORLD_NAMES)}")

    from leadscore.bench import machine

    started = time.perf_counter()
    families = use_vars() if args.ablation else None
    if families is not None and args.families is not None:
        wanted = [f.strip() for f in args.families.split(",") if f.strip()]
        unknown_families = [f for f in wanted if f not in families]
        if unknown_families or not wanted:
            parser.error(f"unknown feature family {', '.join(unknown_families) or '(none)'}: "
                         f"choose from {','.join(families)}")
        families = wanted
    if args.ablation and not families and any(k in ("a", "c") for k in keys):
        say("ablation: dbt_project.yml has no use_* vars, nothing to switch off: skipped")
    work = Path(tempfile.mkdtemp(prefix="leadscore-quality-"))
    results = []
    try:
        for world in worlds_for(keys, args.budget, args.skip_long):
            results.append(run_world(world, args, work, families))
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    info = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "machine": machine(),
        "budget": args.budget,
        "seed": SEED,
        "small": args.small,
        "worlds": keys,
        "ablation_families": families,
        "seconds": round(time.perf_counter() - started, 1),
    }
    markdown = to_markdown(results, info)
    out_dir = args.out if args.out.is_absolute() else REPO / args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for w in results:
        w["checks"] = checks(w)
    (out_dir / f"quality-{stamp}.json").write_text(json.dumps({**info, "results": results}, indent=2, default=str))
    (out_dir / f"quality-{stamp}.md").write_text(markdown)
    (out_dir / "quality-latest.md").write_text(markdown)
    say("")
    say(markdown)
    say(f"results: {out_dir / f'quality-{stamp}.md'} (+ .json), {out_dir / 'quality-latest.md'}")
    return 1 if any(w["errors"] for w in results) else 0


if __name__ == "__main__":
    sys.exit(main())
