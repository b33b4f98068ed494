"""Feature uplift: does the dbt feature store beat the raw columns?

Generates competition-format data with known labels for the score rows, ingests it, runs
`dbt build`, then trains the SAME LightGBM model on
  (a) the raw columns of raw.leads, label-encoded (every column but ids and the label; text ->
      integer codes), and
  (b) main.fct_lead_features (every column but lead_id, id, split, is_converted; VARCHAR ->
      integer category codes, booleans -> 0/1),
picks each model's F1-optimal cutoff out of fold on the training rows, and reports F1 on the
score rows' true labels.

    .venv/bin/python bench/feature_uplift.py [--train-rows 60000] [--score-rows 5000] [--seed 0]
        [--score-prevalence 0.33] [--score-drift] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from leadscore.generate import generate  # noqa: E402

LGB_PARAMS = dict(n_estimators=300, learning_rate=0.05, num_leaves=31, random_state=0, n_jobs=2, verbose=-1)
RAW_EXCLUDE = {"lead_id", "load_id", "source_row", "id", "is_converted", "extra_columns", "loaded_at"}
FCT_EXCLUDE = {"lead_id", "id", "split", "is_converted"}
FOLDS = 5


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Text -> integer codes (-1 for missing), booleans -> 0/1, numbers as they are."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or s.dtype == "boolean":
            out[col] = s.astype("float64")
        elif pd.api.types.is_numeric_dtype(s):
            out[col] = s.astype("float64")
        else:
            codes, _ = pd.factorize(s.astype("object"), sort=True)
            out[col] = codes.astype("int64")
    return out


def best_cutoff(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The cutoff maximising F1 over the out-of-fold predictions."""
    best = (0.5, -1.0)
    for t in np.unique(np.round(p, 4)):
        f = f1_score(y, p >= t)
        if f > best[1]:
            best = (float(t), float(f))
    return best


def evaluate(name: str, x_train: pd.DataFrame, y_train: np.ndarray, x_score: pd.DataFrame,
             y_score: np.ndarray) -> dict:
    started = time.perf_counter()
    oof = np.zeros(len(y_train))
    for tr, va in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x_train, y_train):
        model = lgb.LGBMClassifier(**LGB_PARAMS).fit(x_train.iloc[tr], y_train[tr])
        oof[va] = model.predict_proba(x_train.iloc[va])[:, 1]
    cutoff, cv_f1 = best_cutoff(y_train, oof)
    model = lgb.LGBMClassifier(**LGB_PARAMS).fit(x_train, y_train)
    p = model.predict_proba(x_score)[:, 1]
    result = {
        "features": name, "n_features": x_train.shape[1], "cv_f1": cv_f1, "cv_auc": roc_auc_score(y_train, oof),
        "cutoff": cutoff, "score_f1": f1_score(y_score, p >= cutoff), "score_auc": roc_auc_score(y_score, p),
        "seconds": time.perf_counter() - started,
    }
    imp = pd.Series(model.booster_.feature_importance("gain"), index=x_train.columns).sort_values(ascending=False)
    result["top_features"] = ", ".join(imp.index[:8])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-rows", type=int, default=60000)
    ap.add_argument("--score-rows", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score-prevalence", type=float, default=None,
                    help="rebalance the score rows (e.g. 0.33 like the competition's test file)")
    ap.add_argument("--score-drift", action="store_true",
                    help="score rows from a later form version (new spellings; see leadscore generate)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data and database here (default: temp dir)")
    ap.add_argument("--reuse", action="store_true", help="with --workdir: keep the data already ingested there")
    ap.add_argument("--dbt-vars", default=None, help="passed to dbt build --vars, e.g. '{target_rate_smoothing: 5}'")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db = work / "uplift.duckdb"
        reuse = args.reuse and args.workdir is not None and db.exists() and (work / "truth.csv").exists()
        if not reuse:
            for stale in (db, Path(str(db) + ".wal")):
                stale.unlink(missing_ok=True)
        env = {**os.environ, "LEADSCORE_DB": str(db), "DBT_PROFILES_DIR": str(REPO), "LEADSCORE_HOME": str(REPO)}
        bin_dir = Path(sys.executable).parent

        t0 = time.perf_counter()
        if not reuse:
            generate(work / "raw", args.train_rows, args.score_rows, args.seed, truth_path=work / "truth.csv",
                     score_prevalence=args.score_prevalence, score_drift=args.score_drift)
            subprocess.run([str(bin_dir / "leadscore"), "ingest", "--train", str(work / "raw" / "train.csv"),
                            "--score", str(work / "raw" / "submission.csv")], env=env, cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL)
        t1 = time.perf_counter()
        dbt_cmd = [str(bin_dir / "dbt"), "build", "--no-use-colors", "--quiet", "--select", "+fct_lead_features"]
        if args.dbt_vars:
            dbt_cmd += ["--vars", args.dbt_vars]
        build = subprocess.run(dbt_cmd, env=env, cwd=REPO, capture_output=True, text=True)
        if build.returncode != 0:
            print(build.stdout[-4000:], build.stderr[-2000:], file=sys.stderr)
            return 1
        t2 = time.perf_counter()
        print(f"generate+ingest {t1 - t0:.1f}s, dbt build {t2 - t1:.1f}s")

        con = duckdb.connect(str(db), read_only=True)
        raw = con.execute("select * from raw.leads").df()
        fct = con.execute("select * from main.fct_lead_features").df()
        con.close()
        truth = pd.read_csv(work / "truth.csv")

    truth_by_id = truth.set_index("id")["is_converted"]
    results = []
    for name, frame, exclude in (("raw label-encoded", raw, RAW_EXCLUDE), ("fct_lead_features", fct, FCT_EXCLUDE)):
        is_train = frame["is_converted"].notna().to_numpy()
        x = encode(frame[[c for c in frame.columns if c not in exclude]])
        y_train = frame.loc[is_train, "is_converted"].astype(int).to_numpy()
        y_score = frame.loc[~is_train, "id"].map(truth_by_id)
        if y_score.isna().any():
            raise SystemExit(f"{int(y_score.isna().sum())} score rows have no true label")
        results.append(evaluate(name, x[is_train], y_train, x[~is_train], y_score.astype(int).to_numpy()))

    print(f"\nLightGBM {LGB_PARAMS}; {args.train_rows} train / {args.score_rows} score rows, seed {args.seed}")
    print(f"{'features':<20}{'n':>5}{'cv_f1':>8}{'cv_auc':>8}{'cutoff':>8}{'score_f1':>10}{'score_auc':>10}")
    for r in results:
        print(f"{r['features']:<20}{r['n_features']:>5}{r['cv_f1']:>8.4f}{r['cv_auc']:>8.4f}{r['cutoff']:>8.4f}"
              f"{r['score_f1']:>10.4f}{r['score_auc']:>10.4f}")
    for r in results:
        print(f"top features ({r['features']}): {r['top_features']}")
    print(f"uplift in score F1: {results[1]['score_f1'] - results[0]['score_f1']:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
