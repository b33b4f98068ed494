"""`leadscore bench`: wall time, throughput and peak memory of every stage, against DuckDB's floor.

Each stage runs as the same CLI command the nightly job runs, in a subprocess whose whole
process tree (dbt's children included) is sampled for resident memory. Every SQL stage is
paired with a floor measured in the same run on the same machine: DuckDB reading the same CSV
files into a table (for ingest) and one CREATE TABLE AS over the raw rows (for dbt build). The
ratio to the floor is what means something on another machine.

Data sizes count leads in total. The labeled history is fixed at the real file's 59,299 rows
(nobody gets a million labels), the rest are unlabeled leads to score, so the large sizes
stress ingestion, features and scoring, and training costs the same at every size.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil

from leadscore import config
from leadscore.build import NIGHTLY_BUILD_ARGS

TRAIN_ROWS = 59_299
# sizes from here on run once whatever --repeats says: a 5M-lead run takes minutes per stage
ONE_RUN_FROM = 2_000_000
REAL_TOTAL = 59_299 + 5_271
TRAIN_BUDGET_SECONDS = 30
# `score` computes each lead's reasons by TreeSHAP unless --no-reasons: about 80 predictions of
# work per lead, so the bench times it separately, once, and only up to this size
REASONS_MAX_SIZE = 100_000
CACHE_DIR = Path("bench") / "cache"


@dataclass
class Measurement:
    seconds: float
    peak_rss_bytes: int


@dataclass
class StageResult:
    size: int
    stage: str
    rows: int
    runs: list[Measurement] = field(default_factory=list)
    floor_seconds: float | None = None

    @property
    def median_seconds(self) -> float:
        return statistics.median(m.seconds for m in self.runs)

    @property
    def peak_rss_bytes(self) -> int:
        return max(m.peak_rss_bytes for m in self.runs)

    def row(self) -> dict:
        median = self.median_seconds
        return {
            "size": self.size,
            "stage": self.stage,
            "rows": self.rows,
            "runs": len(self.runs),
            "median_seconds": round(median, 3),
            "rows_per_second": round(self.rows / median) if median else None,
            "peak_rss_mib": round(self.peak_rss_bytes / 2**20),
            "floor_seconds": None if self.floor_seconds is None else round(self.floor_seconds, 3),
            "ratio_to_floor": None if not self.floor_seconds else round(median / self.floor_seconds, 2),
            "all_seconds": [round(m.seconds, 3) for m in self.runs],
        }


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> Measurement:
    """Run a command, sampling the RSS of its whole process tree every 20 ms."""
    # output to a file, not a pipe: a pipe nobody reads until the end blocks a child that writes
    # more than its buffer (DuckDB's progress bar on a long query at 5M leads did)
    out = tempfile.TemporaryFile(mode="w+")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    out.seek(0)
    output = out.read()
    out.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{output[-3000:]}")
    return Measurement(elapsed, peak)


def dataset(size: int, say: Callable[[str], None]) -> Path:
    """Generate (once, then cached under bench/cache/) a dataset of `size` leads."""
    folder = config.project_root() / CACHE_DIR / f"leads_{size}"
    if (folder / "submission.csv").exists() and (folder / "train.csv").exists():
        return folder
    train_rows = train_rows_for(size)
    say(f"bench: generating {size:,} leads into {folder} (cached for later runs)")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    from leadscore.generate import generate

    generate(tmp, train_rows=train_rows, score_rows=size - train_rows, seed=2024)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def train_rows_for(size: int) -> int:
    """Labeled rows in a dataset of `size` leads: the real file's share up to the real size,
    then a fixed 59,299 (more leads means more to score, not more labels)."""
    return TRAIN_ROWS if size >= REAL_TOTAL else round(size * TRAIN_ROWS / REAL_TOTAL)


def _leadscore(*args: str) -> list[str]:
    return [sys.executable, "-m", "leadscore.cli", *args]


def _dbt_parse() -> list[str]:
    """A full `dbt parse` of the project for the bench database, as leadscore runs dbt."""
    code = "from leadscore.build import run_dbt; run_dbt(['parse', '--no-partial-parse', '--quiet'], quiet=True)"
    return [sys.executable, "-c", code]


def _duckdb(sql: str, db_file: Path) -> list[str]:
    code = f"import duckdb; duckdb.connect({str(db_file)!r}).execute({sql!r})"
    return [sys.executable, "-c", code]


def bench_size(size: int, repeats: int, say: Callable[[str], None]) -> list[StageResult]:
    data = dataset(size, say)
    train_csv, score_csv = data / "train.csv", data / "submission.csv"
    root = config.project_root()
    work = Path(tempfile.mkdtemp(prefix=f"leadscore-bench-{size}-"))
    repeats = 1 if size >= ONE_RUN_FROM else repeats
    names = ["ingest", "dbt parse", "dbt build", "train", "score", "publish"]
    if size <= REASONS_MAX_SIZE:
        names.insert(names.index("score") + 1, "score with reasons")
    stages = {name: StageResult(size, name, size) for name in names}
    stages["train"].rows = train_rows_for(size)
    stages["score"].rows = size - stages["train"].rows
    if "score with reasons" in stages:
        stages["score with reasons"].rows = stages["score"].rows
    floors: dict[str, list[float]] = {"ingest": [], "dbt build": []}
    try:
        for r in range(repeats):
            run_dir = work / f"run{r}"
            run_dir.mkdir()
            env = dict(os.environ, LEADSCORE_DB=str(run_dir / "leadscore.duckdb"), LEADSCORE_HOME=str(root))
            floor_db = run_dir / "floor.duckdb"
            floors["ingest"].append(measure(_duckdb(
                f"create table a as select * from read_csv('{train_csv}', header=true, all_varchar=true); "
                f"create table b as select * from read_csv('{score_csv}', header=true, all_varchar=true)",
                floor_db), env, root).seconds)
            stages["ingest"].runs.append(measure(_leadscore("ingest", "--train", str(train_csv), "--score", str(score_csv)), env, root))
            floors["dbt build"].append(measure(_duckdb(
                f"attach '{run_dir / 'leadscore.duckdb'}' as src (read_only); "
                "create table features as select * from src.raw.leads", floor_db), env, root).seconds)
            # A night's dbt finds the parse its previous night left in the database's target
            # folder (leadscore.build.target_path), so the nightly build is timed after one. The
            # full parse, which the first night and the first after a change of the dbt project
            # pay, is its own row: it does not depend on the data.
            stages["dbt parse"].runs.append(measure(_dbt_parse(), env, root))
            stages["dbt build"].runs.append(measure(_leadscore(*NIGHTLY_BUILD_ARGS, "--quiet"), env, root))
            if r == 0:
                # Training is bounded by its budget, not by the data: one run says what it costs.
                stages["train"].runs.append(measure(
                    _leadscore("train", "--time-budget", str(TRAIN_BUDGET_SECONDS), "--seed", "0"), env, root))
                model_dir = run_dir
            else:
                _copy_model(model_dir, run_dir, env, root)
            # scoring proper (probabilities, rank, decile); the reasons' TreeSHAP is timed apart
            stages["score"].runs.append(measure(_leadscore("score", "--all", "--no-reasons"), env, root))
            if "score with reasons" in stages and r == 0:
                stages["score with reasons"].runs.append(measure(_leadscore("score", "--all"), env, root))
            stages["publish"].runs.append(measure(_leadscore("publish"), env, root))
            say(f"bench: {size:,} leads, run {r + 1}/{repeats}: "
                + ", ".join(f"{s.stage} {s.runs[-1].seconds:.1f} s" for s in stages.values() if s.runs))
            if r > 0:
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stages["ingest"].floor_seconds = statistics.median(floors["ingest"])
    stages["dbt build"].floor_seconds = statistics.median(floors["dbt build"])
    return list(stages.values())


def _copy_model(src_dir: Path, dst_dir: Path, env: dict[str, str], root: Path) -> None:
    """Register the first run's model in a later run's database, so scoring is measured alike."""
    code = (
        "import duckdb, sys; src, dst = sys.argv[1:3]; con = duckdb.connect(dst); "
        "con.execute(f\"attach '{src}' as src (read_only)\"); "
        "con.execute('insert into ops.model_registry by name select * from src.ops.model_registry')"
    )
    subprocess.run([sys.executable, "-c", code, str(src_dir / "leadscore.duckdb"), str(dst_dir / "leadscore.duckdb")],
                   env=env, cwd=root, check=True)
    # the registry names the model's folder relative to the database's models folder
    shutil.copytree(src_dir / "models", dst_dir / "models", dirs_exist_ok=True)


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def to_markdown(rows: list[dict], info: dict) -> str:
    lines = [
        (f"leadscore bench, {info['when']}, commit {info['commit']}: {info['machine']['cores']} cores, "
         f"{info['machine']['memory_gib']} GiB; median of {info['repeats']} runs (training: 1 run, "
         f"{TRAIN_BUDGET_SECONDS} s budget; sizes from {ONE_RUN_FROM:,} leads: 1 run). dbt build: the nightly's "
         "(leadscore.build.NIGHTLY_BUILD_ARGS: no unit tests) on a database whose dbt parse is current; dbt parse: "
         "a full parse, as the first night pays"),
        "",
        "| leads | stage | rows | median s | rows/s | peak RSS MiB | floor s | x floor |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        floor = "" if r["floor_seconds"] is None else f"{r['floor_seconds']:.2f}"
        ratio = "" if r["ratio_to_floor"] is None else f"{r['ratio_to_floor']:.2f}"
        lines.append(
            f"| {r['size']:,} | {r['stage']} | {r['rows']:,} | {r['median_seconds']:.2f} | "
            f"{(r['rows_per_second'] or 0):,} | {r['peak_rss_mib']:,} | {floor} | {ratio} |"
        )
    # a night scores with reasons; where they were not timed (large sizes), scoring without them
    by_size: dict[int, dict[str, float]] = {}
    for r in rows:
        by_size.setdefault(r["size"], {})[r["stage"]] = r["median_seconds"]
    lines.append("")
    for size, secs in by_size.items():
        scoring = "score with reasons" if "score with reasons" in secs else "score"
        total = sum(secs.get(s, 0.0) for s in ("ingest", "dbt build", scoring, "publish"))
        parse = f"; the first night, or the first after the dbt project changed, adds the full dbt parse, {secs['dbt parse']:.1f} s" if "dbt parse" in secs else ""
        lines.append(f"- {size:,} leads: nightly run without training (ingest + dbt build + {scoring} + publish) {total:.1f} s{parse}")
    lines.extend(memory_table(rows))
    lines.extend(targets_table(rows))
    return "\n".join(lines) + "\n"


def targets_table(rows: list[dict]) -> list[str]:
    """Issue 15's targets against this run, for the sizes it measured (64,570, 1M, 5M)."""
    got = {(r["size"], r["stage"]): r for r in rows}
    checks: list[tuple[str, str, bool]] = []  # what, measured, met

    def add(what: str, measured: str, ok: bool) -> None:
        checks.append((what, measured, ok))

    nightly = got.get((REAL_TOTAL, "dbt build"))
    if nightly:
        secs = {stage: got[(REAL_TOTAL, stage)]["median_seconds"] for stage in
                ("ingest", "dbt build", "score with reasons", "publish") if (REAL_TOTAL, stage) in got}
        total = sum(secs.values())
        add(f"nightly without training at {REAL_TOTAL:,} leads <= 10 s", f"{total:.1f} s", total <= 10)
    score_1m, score_5m = got.get((1_000_000, "score")), got.get((5_000_000, "score"))
    if score_1m:
        add("scoring throughput at 1M >= 100k leads/s", f"{score_1m['rows_per_second']:,} leads/s",
            score_1m["rows_per_second"] >= 100_000)
    if score_5m:
        add("scoring peak memory at 5M <= 1.5 GiB", f"{score_5m['peak_rss_mib']:,} MiB", score_5m["peak_rss_mib"] <= 1536)
    if score_1m and score_5m:
        growth = score_5m["peak_rss_mib"] / score_1m["peak_rss_mib"]
        add("scoring peak memory flat from 1M to 5M (<= 1.2x)", f"{growth:.2f}x", growth <= 1.2)
    for size, label in ((1_000_000, "1M"), (5_000_000, "5M")):
        ingest = got.get((size, "ingest"))
        if ingest and ingest["ratio_to_floor"]:
            add(f"ingest at {label} <= 2x the floor", f"{ingest['ratio_to_floor']:.2f}x", ingest["ratio_to_floor"] <= 2)
    ingest_5m = got.get((5_000_000, "ingest"))
    if ingest_5m:
        add("ingest peak memory at 5M <= 3 GiB", f"{ingest_5m['peak_rss_mib']:,} MiB", ingest_5m["peak_rss_mib"] <= 3072)
    for size, label, limit in ((1_000_000, "1M", 20), (5_000_000, "5M", 80)):
        build = got.get((size, "dbt build"))
        if build:
            add(f"dbt build at {label} <= {limit} s", f"{build['median_seconds']:.1f} s", build["median_seconds"] <= limit)
    if not checks:
        return []
    lines = ["", "Targets (issue 15):", "", "| target | measured | |", "| --- | ---: | --- |"]
    lines += [f"| {what} | {measured} | {'PASS' if ok else '**FAIL**'} |" for what, measured, ok in checks]
    return lines


def memory_table(rows: list[dict]) -> list[str]:
    """Peak RSS of each stage at every size side by side, and the growth from the second
    largest size to the largest: a stage whose memory is flat shows about 1.0x."""
    sizes = sorted({r["size"] for r in rows})
    if len(sizes) < 2:
        return []
    peak = {(r["stage"], r["size"]): r["peak_rss_mib"] for r in rows}
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    a, b = sizes[-2], sizes[-1]
    lines = ["", f"Peak RSS (MiB) of each stage by size; growth from {a:,} to {b:,} leads ({b / a:.0f}x the leads):", "",
             "| stage | " + " | ".join(f"{s:,}" for s in sizes) + f" | {b:,} / {a:,} |",
             "| --- | " + " | ".join("---:" for _ in sizes) + " | ---: |"]
    for stage in stages:
        cells = [f"{peak[(stage, s)]:,}" if (stage, s) in peak else "" for s in sizes]
        growth = f"{peak[(stage, b)] / peak[(stage, a)]:.2f}x" if (stage, a) in peak and (stage, b) in peak else ""
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {growth} |")
    return lines


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=config.project_root(), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


MIN_SIZE = 1_000  # fewer leads leave too few labeled rows for the folds of training


def check_arguments(sizes: list[int], repeats: int) -> None:
    """A bad size or repeat count is a one-line error before anything is generated."""
    from leadscore.errors import LeadscoreError

    if not sizes:
        raise LeadscoreError("no sizes given (e.g. --sizes 64570,1000000)")
    small = [s for s in sizes if not isinstance(s, int) or s < MIN_SIZE]
    if small:
        raise LeadscoreError(f"sizes must be whole lead counts of at least {MIN_SIZE:,}, got "
                             + ", ".join(map(str, small)))
    if not isinstance(repeats, int) or repeats < 1:
        raise LeadscoreError(f"repeats must be a positive whole number, got {repeats}")


def run_bench(sizes: list[int], repeats: int = 3, out_dir: Path = Path("bench/results"),
              say: Callable[[str], None] = print) -> list[dict]:
    check_arguments(sizes, repeats)
    rows: list[dict] = []
    for size in sizes:
        rows.extend(s.row() for s in bench_size(size, repeats, say))
    info = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "machine": machine(),
        "repeats": repeats,
    }
    markdown = to_markdown(rows, info)
    out_dir = out_dir if out_dir.is_absolute() else config.project_root() / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}.json").write_text(json.dumps({**info, "results": rows}, indent=2))
    (out_dir / f"{stamp}.md").write_text(markdown)
    (out_dir / "latest.md").write_text(markdown)
    say(markdown)
    return rows
