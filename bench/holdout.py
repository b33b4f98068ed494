"""How far one score file's F1 is from the pipeline's F1 on that data: held-out tenths of a training file.

A benchmark's score file is one draw of a few thousand leads, so its F1 moves by a few hundredths
from the draw alone. This runs the whole pipeline, as the quality benchmark does (bench/quality.py:
its own temporary database and models folder, the CLI as subprocesses), once per split. Each split
holds out a stratified random share of the labeled training file (seed = the split's number) as the
score file and keeps those rows' own labels as its truth; the rest is trained on:

    leadscore ingest --train <rest> --score <held out>
    leadscore build
    leadscore train --time-budget B --seed 1
    leadscore score
    leadscore evaluate --labels <held-out labels>

Only the training file's labels are read. The spread over the splits says how far from the
pipeline's expected F1 one score file of that size can land; the mean is that expected F1 (for a
model trained on 1 - share of the rows). Usage:

    .venv/bin/python bench/holdout.py [--data DIR] [--splits 8] [--share 0.1] [--budget 120]

`DIR` holds `train.csv` with `is_converted` (default: ../shared/eval/foreign). Results:
`bench/results/holdout-<UTC stamp>.md` and `.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (bench/quality.py: the Runner, the truth reader, measure)
from leadscore.input_format import TRUE_LABELS  # noqa: E402

LABEL = "is_converted"
ID_START = 1_000_000  # ids given to the held-out rows, far from any id a file carries


def _positive(value: str) -> bool:
    """The lead files' own rule for a converted label (input_format.TRUE_LABELS)."""
    return value.strip().lower() in TRUE_LABELS


def split_file(train: Path, folder: Path, share: float, seed: int) -> dict[str, Any]:
    """Write folder/train.csv (the rows kept), folder/submission.csv (the held-out rows: an `id`
    first, the label emptied, every other field verbatim) and folder/truth.csv (`id`, the held-out
    rows' own labels). The share is held out within each class (stratified)."""
    with train.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    if LABEL not in header:
        raise SystemExit(f"{train}: no {LABEL} column to hold out by")
    if "id" in header:
        raise SystemExit(f"{train}: already has an id column; a training file has none")
    label = header.index(LABEL)
    y = np.array([_positive(r[label]) for r in rows])
    rng = np.random.default_rng(seed)
    held = np.zeros(len(rows), dtype=bool)
    for cls in (True, False):
        members = np.flatnonzero(y == cls)
        held[rng.choice(members, size=int(round(share * len(members))), replace=False)] = True
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(r for r, h in zip(rows, held, strict=True) if not h)
    with (folder / "submission.csv").open("w", newline="", encoding="utf-8") as sub, \
            (folder / "truth.csv").open("w", newline="", encoding="utf-8") as tru:
        ws, wt = csv.writer(sub), csv.writer(tru)
        ws.writerow(["id", *header])
        wt.writerow(["id", LABEL])
        for k, i in enumerate(np.flatnonzero(held)):
            row = list(rows[i])
            wt.writerow([ID_START + k, "True" if y[i] else "False"])
            row[label] = ""
            ws.writerow([ID_START + k, *row])
    return {"train_rows": int((~held).sum()), "held_out_rows": int(held.sum()),
            "held_out_positive_rate": float(y[held].mean())}


def run_split(train: Path, work: Path, k: int, share: float, budget: float) -> dict[str, Any]:
    folder = work / f"split-{k}"
    info = split_file(train, folder / "data", share, seed=k)
    run = quality.Runner(folder / "leadscore.duckdb", folder / "commands.log")
    run("ingest", "--train", str(folder / "data" / "train.csv"), "--score", str(folder / "data" / "submission.csv"))
    run("build")
    run("train", "--time-budget", f"{budget:g}", "--seed", str(quality.SEED), step="train")
    run("score")
    run("evaluate", "--labels", str(folder / "data" / "truth.csv"))
    measured = quality.measure(run.db, quality.read_truth(folder / "data" / "truth.csv"))
    chosen = next(r for r in measured["rows"] if r["role"] == "chosen")
    baseline = next((r for r in measured["rows"] if r["model"] == quality.BASELINE), {})
    out = {"split": k, **info, "chosen": measured["chosen"], "f1": chosen["f1"], "best_f1": chosen["best_f1"],
           "auc": chosen["auc"], "flagged_ratio": chosen.get("flagged_ratio"), "oof_f1": chosen["oof_f1"],
           "baseline_f1": baseline.get("f1"), "notes": measured["notes"]}
    quality.say(f"  split {k}: chosen {out['chosen']}, F1 {out['f1']:.3f} at own cutoff, best {out['best_f1']:.3f}, "
                f"AUC {out['auc']:.3f}, out of fold {out['oof_f1']:.3f}")
    return out


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, spread and range over the splits, and the 95% t-interval of the mean (n - 1 degrees
    of freedom; None from one split): the spread says where one score file can land, the
    interval where the pipeline's expected figure lies."""
    n = len(values)
    mean, sd = statistics.fmean(values), statistics.stdev(values) if n > 1 else 0.0
    ci95 = None
    if n > 1:
        from scipy.stats import t

        half = float(t.ppf(0.975, n - 1)) * sd / n ** 0.5
        ci95 = [mean - half, mean + half]
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "ci95": ci95}


def to_markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"leadscore hold-out benchmark, {info['when']}, commit {info['commit']}: {info['data']}, "
        f"{info['splits']} splits holding out {info['share']:.0%} (stratified, seed = split), "
        f"`leadscore train --time-budget {info['budget']:g} --seed {quality.SEED}`",
        "",
        "| split | held-out rows (positive rate) | chosen | F1 at own cutoff | best F1 | AUC | flagged / actual | out-of-fold F1 | baseline F1 at its cutoff |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {r['split']} | {r['held_out_rows']} ({r['held_out_positive_rate']:.4f}) | {r['chosen']} | "
                     f"{r['f1']:.3f} | {r['best_f1']:.3f} | {r['auc']:.3f} | {quality.fmt(r['flagged_ratio'], 2)}x | "
                     f"{r['oof_f1']:.3f} | "
                     f"{quality.fmt(r['baseline_f1'])} |")
    lines.append("")
    for key, name in (("f1", "F1 at own cutoff"), ("best_f1", "best F1"), ("auc", "AUC")):
        s = info["summary"][key]
        lines.append(f"- {name}: mean {s['mean']:.3f}, standard deviation {s['sd']:.3f}, "
                     f"from {s['min']:.3f} to {s['max']:.3f}"
                     + ("" if s.get("ci95") is None else
                        f"; 95% t-interval of the mean {s['ci95'][0]:.3f} to {s['ci95'][1]:.3f}"))
    beaten = [r for r in results if r.get("baseline_f1") is not None]
    if beaten:
        wins = sum(r["f1"] > r["baseline_f1"] for r in beaten)
        lines.append(f"- the chosen model's F1 above the fixed baseline's (each at its own cutoff) in {wins} of "
                     f"{len(beaten)} splits")
    notes = [f"split {r['split']}: {n}" for r in results for n in r["notes"]]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    lines += ["", f"Total wall time {info['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=quality.foreign_dir(), help="folder with train.csv")
    parser.add_argument("--splits", type=int, default=8)
    parser.add_argument("--share", type=float, default=0.1, help="share held out as the score file")
    parser.add_argument("--budget", type=float, default=120.0, help="train --time-budget (s)")
    parser.add_argument("--out", type=Path, default=quality.REPO / "bench" / "results")
    args = parser.parse_args(argv)
    train = args.data / "train.csv"
    if not train.is_file():
        parser.error(f"{train} does not exist")
    if not 0 < args.share < 1 or args.splits < 1:
        parser.error("--share must be between 0 and 1 and --splits at least 1")
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="leadscore-holdout-") as work:
        for k in range(1, args.splits + 1):
            results.append(run_split(train, Path(work), k, args.share, args.budget))
    info = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": quality._commit(),
            "data": str(args.data), "splits": args.splits, "share": args.share, "budget": args.budget,
            "seconds": time.perf_counter() - started,
            "summary": {k: summary([r[k] for r in results]) for k in ("f1", "best_f1", "auc")}}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    md = args.out / f"holdout-{stamp}.md"
    md.write_text(to_markdown(results, info))
    (args.out / f"holdout-{stamp}.json").write_text(json.dumps({**info, "results": results}, indent=2))
    quality.say(f"results: {md} (+ .json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
