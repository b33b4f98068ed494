"""Publish over a growing score history (issue 15): does `leadscore publish` slow down as nights add up?

    python bench/publish_series.py [--nights 30] [--train-rows 20000] [--score-rows 180000] [--out bench/results]

One generated data set is ingested, built and given a baseline model once. Then each "night"
appends one scoring run of every unlabeled lead to `ops.score_history` (`leadscore score --all
--no-reasons`: a night's rescoring, so the history grows by --score-rows per night, far faster
than real nights add leads) and times `leadscore publish` as the nightly job runs it, in its own
process. A publish whose cost depends on the history grows night after night; one that does not
stays flat. Writes bench/results/publish-series-<time>.md: publish seconds per night, history
rows, and slopes in seconds per million history rows (least squares, and Theil-Sen, which a
night slowed by other work on the machine barely moves); beside them each night's
scoring seconds and the database file's size (ops.latest_scores is rewritten by every run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def history_rows(db_file: Path) -> int:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return int(con.execute("select count(*) from ops.score_history").fetchone()[0])
    finally:
        con.close()


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def robust_slope(xs: list[float], ys: list[float]) -> float:
    """Theil-Sen: the median of the slopes of all pairs, which one night slowed by other work on
    a shared machine barely moves (the least-squares slope follows it)."""
    pairs = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return statistics.median(pairs) if pairs else 0.0


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--score-rows", type=int, default=180_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    leadscore = [sys.executable, "-m", "leadscore.cli"]
    nights: list[tuple[int, int, float]] = []  # night, history rows at publish, seconds
    extra: list[tuple[float, float]] = []  # the night's scoring seconds, database MiB after publish
    with tempfile.TemporaryDirectory(prefix="leadscore-publish-series-") as tmp:
        data = Path(tmp)
        db_file = data / "leadscore.duckdb"
        env = dict(os.environ, LEADSCORE_DB=str(db_file), LEADSCORE_HOME=str(REPO))
        run([*leadscore, "generate", "--out", str(data / "raw"), "--train-rows", str(args.train_rows),
             "--score-rows", str(args.score_rows), "--seed", "5"], env)
        run([*leadscore, "ingest", "--train", str(data / "raw" / "train.csv"),
             "--score", str(data / "raw" / "submission.csv")], env)
        run([*leadscore, "build", "--quiet"], env)
        run([*leadscore, "train", "--baseline-only", "--seed", "1"], env)
        for night in range(1, args.nights + 1):
            scoring = run([*leadscore, "score", "--all", "--no-reasons"], env)
            seconds = run([*leadscore, "publish"], env)
            rows = history_rows(db_file)
            size = db_file.stat().st_size / 2**20
            nights.append((night, rows, seconds))
            extra.append((scoring, size))
            print(f"night {night:2d}: history {rows:>11,} rows, publish {seconds:.2f} s, "
                  f"score {scoring:.2f} s, database {size:,.0f} MiB", flush=True)
    xs = [rows / 1e6 for _, rows, _ in nights]
    ys = [s for _, _, s in nights]
    k = min(5, len(ys))
    stamp = datetime.now(timezone.utc)
    lines = [
        f"leadscore publish over a growing score history, {stamp:%Y-%m-%d %H:%M} UTC, commit {commit()}: "
        f"{os.cpu_count()} cores; {args.train_rows:,} training and {args.score_rows:,} unlabeled leads, "
        f"each night one `score --all --no-reasons` run of every unlabeled lead, then `leadscore publish` "
        "timed as its own process (`python bench/publish_series.py`).",
        "",
        f"- publish, median of the first {k} nights: {statistics.median(ys[:k]):.2f} s; of the last {k}: "
        f"{statistics.median(ys[-k:]):.2f} s",
        f"- slope: {slope(xs, ys):+.3f} s per million history rows, least squares; {robust_slope(xs, ys):+.3f} "
        f"Theil-Sen (history {nights[0][1]:,} to {nights[-1][1]:,} rows)",
        f"- scoring (`score --all --no-reasons`), median of the first {k} nights: "
        f"{statistics.median(e[0] for e in extra[:k]):.2f} s; of the last {k}: "
        f"{statistics.median(e[0] for e in extra[-k:]):.2f} s; slope "
        f"{slope(xs, [e[0] for e in extra]):+.3f} s per million history rows, least squares; "
        f"{robust_slope(xs, [e[0] for e in extra]):+.3f} Theil-Sen",
        f"- database file: {extra[0][1]:,.0f} MiB after night 1, {extra[-1][1]:,.0f} MiB after night {nights[-1][0]}",
        "",
        "| night | history rows | publish s | score s | database MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(f"| {n} | {rows:,} | {s:.2f} | {sc:.2f} | {mib:,.0f} |" for (n, rows, s), (sc, mib) in zip(nights, extra, strict=True)),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"publish-series-{stamp:%Y%m%dT%H%MZ}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
