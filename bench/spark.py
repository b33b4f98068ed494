"""DuckDB beside local Spark (issue 14): feature build and scoring of the same leads, one run each.

    python bench/spark.py --leads 1000000 [--score-share 0.5] [--out bench/results]

Generates the leads (competition format, qualifier columns), ingests them once with `--parquet`,
then times, as the CLI runs them: the feature store build (`dbt build --select +fct_lead_features`,
seeds and models, no tests, on each target) and scoring with one baseline model (`leadscore score` and
`leadscore score --engine spark`). Writes a Markdown table to bench/results/spark-<time>.md.
Needs the spark extra and Java 17+. Spark start-up (a JVM, the metastore) is inside each Spark
figure: that is what a nightly run pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(label: str, argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{label} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(f"{label}: {seconds:.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--score-share", type=float, default=0.5, help="share of the leads to score")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    score_rows = int(args.leads * args.score_share)
    train_rows = args.leads - score_rows
    with tempfile.TemporaryDirectory(prefix="leadscore-spark-bench-") as tmp:
        data = Path(tmp)
        env = dict(os.environ, LEADSCORE_DB=str(data / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO),
                   DBT_PROFILES_DIR=str(REPO))
        leadscore = [str(BIN / "leadscore")]
        dbt = [str(BIN / "dbt"), "build", "--select", "+fct_lead_features", "--resource-type", "seed",
               "--resource-type", "model", "--no-use-colors", "--quiet",
               "--target-path", str(data / "target"), "--log-path", str(data / "logs")]
        run("generate", [*leadscore, "generate", "--out", str(data / "raw"), "--train-rows", str(train_rows),
                         "--score-rows", str(score_rows), "--seed", "7"], env)
        times = {
            "ingest --parquet": run("ingest --parquet", [*leadscore, "ingest", "--train", str(data / "raw" / "train.csv"),
                                                           "--score", str(data / "raw" / "submission.csv"), "--parquet"], env),
            "build duckdb": run("build duckdb", dbt, env),
            "build spark": run("build spark", [*dbt, "--target", "spark"], env),
        }
        run("train (baseline, not compared)", [*leadscore, "train", "--baseline-only", "--seed", "1"], env)
        # --no-reasons: Spark's executors predict only, so DuckDB does the same work (reasons cost
        # about 80 predictions per lead: hours at this size)
        times["score duckdb"] = run("score duckdb", [*leadscore, "score", "--no-reasons"], env)
        times["score spark"] = run("score spark", [*leadscore, "score", "--engine", "spark", "--all"], env)
    stamp = datetime.now(timezone.utc)
    lines = [
        f"DuckDB beside local Spark, {stamp:%Y-%m-%d %H:%M} UTC: {args.leads:,} leads ({train_rows:,} training, "
        f"{score_rows:,} to score), {os.cpu_count()} cores, {platform.machine()}; one run each "
        "(`python bench/spark.py`). Spark figures include starting its JVM and metastore.",
        "",
        "| stage | DuckDB s | Spark (local) s | Spark / DuckDB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for stage in ("build", "score"):
        d, s = times[f"{stage} duckdb"], times[f"{stage} spark"]
        what = "feature store (seeds and models of `+fct_lead_features`)" if stage == "build" else f"scoring {score_rows:,} leads"
        lines.append(f"| {what} | {d:.1f} | {s:.1f} | {s / d:.1f}x |")
    lines.append(f"\nIngest with `--parquet` (DuckDB load and the Parquet sources for Spark): {times['ingest --parquet']:.1f} s.")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"spark-{stamp:%Y%m%dT%H%MZ}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
