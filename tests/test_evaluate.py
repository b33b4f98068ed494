"""`leadscore evaluate`: the labels reader's one-line errors, and the command end to end on a copy
of conftest's small pipeline (generated data, ingested, built, trained and scored by a nightly
run) with the score rows' true labels. The figures themselves: tests/test_metrics.py."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from helpers import copy_pipeline
from leadscore.column_rules import label_expr
from leadscore.errors import LeadscoreError
from leadscore.input_format import FALSE_LABELS, TRUE_LABELS
from leadscore.labels_file import read_labels
from leadscore.metrics import evaluate_scores, f1_intervals

REPO = Path(__file__).resolve().parents[1]
SCORE_ROWS = 400  # the template's score rows, each with a true label

# ------------------------------------------------------------------------------ labels reader


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_labels_accept_every_spelling_and_ignore_extra_columns(tmp_path):
    f = write(tmp_path / "t.csv", "true_probability,is_converted,id\n0.2,True,1\n0.1,false,2\n.3,1,3\n0,0,4\n"
                                 "0.9,TRUE,5\n0.4,False,6.0\n\n")
    labels = read_labels(f)
    assert labels.ids.tolist() == [1, 2, 3, 4, 5, 6]
    assert labels.labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert len(labels.sha256) == 64


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("", "file is empty"),
        ("lead,is_converted\n1,1\n", "no 'id' column"),
        ("id,converted\n1,1\n", "no 'is_converted' column"),
        ("id,is_converted\n", "header only"),
        ("id,is_converted\n1,1\n2,maybe\n", "line 3, column is_converted: 'maybe' is not a label"),
        ("id,is_converted\n1,1\n2\n", "line 3, column is_converted: '' is not a label"),
        ("id,is_converted\n1,1\nabc,0\n", "line 3, column id: 'abc' is not an integer id"),
        ("id,is_converted\n1,1\n1,0\n", "line 3, column id: duplicate id 1 (first on line 2)"),
    ],
)
def test_bad_labels_file_fails_naming_file_line_and_column(tmp_path, content, expected):
    f = tmp_path / "labels.csv"
    if content is not None:
        f.write_text(content)
    with pytest.raises(LeadscoreError) as exc:
        read_labels(f)
    assert str(f) in str(exc.value)
    assert expected in str(exc.value)
    assert "\n" not in str(exc.value)


def test_labels_take_exactly_the_spellings_a_lead_file_takes(tmp_path):
    # one vocabulary: a labels file reads a label as ingest reads a lead file's (column_rules.label_expr)
    cells = [v for s in (*TRUE_LABELS, *FALSE_LABELS) for v in (s, s.upper(), s.title(), f" {s} ")]
    cells += ["maybe", "2", "\t1", "y", "1.00", ""]
    con = duckdb.connect()
    try:
        con.execute("create table s (n integer, is_converted varchar)")
        con.executemany("insert into s values (?, ?)", list(enumerate(cells)))
        ingest_reads = [r[0] for r in con.execute(f"select {label_expr()} from s as s order by n").fetchall()]
    finally:
        con.close()
    labels_reads = []
    for n, cell in enumerate(cells):
        f = write(tmp_path / f"l{n}.csv", f'id,is_converted\n{n},"{cell}"\n')
        try:
            labels_reads.append(bool(read_labels(f).labels[0]))
        except LeadscoreError as exc:
            assert f"line 2, column is_converted: {cell!r} is not a label" in str(exc)
            labels_reads.append(None)
    assert labels_reads == ingest_reads
    assert ingest_reads[:4] == [True] * 4 and ingest_reads[-6:] == [None] * 6


def test_labels_file_is_read_as_a_lead_file_is_gzip_and_bom_included(tmp_path):
    text = "\ufeffid,is_converted\r\n1,YES\r\n2,0.0\r\n"
    plain = write(tmp_path / "plain.csv", text)
    packed = tmp_path / "outcomes.csv.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    disguised = tmp_path / "outcomes.csv"  # gzip whatever its name, as ingest reads it
    disguised.write_bytes(packed.read_bytes())
    for f in (plain, packed, disguised):
        labels = read_labels(f)
        assert (labels.ids.tolist(), labels.labels.tolist(), labels.lines.tolist()) == ([1, 2], [1, 0], [2, 3])
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"id,is_converted,note\n1,1,ok\n2,0,ingenier\xeda\n")
    with pytest.raises(LeadscoreError, match="latin1.csv: not valid UTF-8 at line 3"):
        read_labels(latin1)


# ---------------------------------------------------------------------------- end to end, CLI


def leadscore(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEADSCORE_DB=str(data / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO))
    return subprocess.run([sys.executable, "-m", "leadscore.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.fixture(scope="module")
def scored(pipeline_template, tmp_path_factory) -> Path:
    """A copy of conftest's pipeline_template (generate 3,000 + 400 rows with the score rows'
    true labels, then a nightly run: ingest, dbt build, train, score, publish): data/ and the
    labels as raw/truth.csv. evaluate reads main.scored_leads; which model scored them does not
    matter here."""
    root = copy_pipeline(pipeline_template, tmp_path_factory.mktemp("evaluate"))
    (root / "raw").mkdir()
    shutil.copy(pipeline_template / "truth.csv", root / "raw" / "truth.csv")
    return root


def query(db_file: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_evaluate_end_to_end_stores_a_row_and_report(scored):
    data, truth = scored / "data", scored / "raw" / "truth.csv"
    run = ok(leadscore(data, "evaluate", "--labels", str(truth)))
    assert f"{SCORE_ROWS} matched, 0 unmatched of {SCORE_ROWS} labeled" in run.stdout
    db_file = data / "leadscore.duckdb"
    rows = query(db_file, "select model_version, rows_matched, rows_unmatched, positives, label_rows, "
                          "labels_sha256, cutoff, f1_at_cutoff, best_f1, auc, average_precision, log_loss, "
                          "brier, flagged_share, actual_positive_rate, report_path from ops.evaluations")
    assert len(rows) == 1
    (version, matched, unmatched, positives, label_rows, sha, cutoff, f1, best_f1, auc, ap, ll, brier,
     flagged, rate, report_path) = rows[0]
    current, = query(db_file, "select model_version from main.model_registry where is_current")[0]
    assert version == current
    assert (matched, unmatched, label_rows) == (SCORE_ROWS, 0, SCORE_ROWS)
    import hashlib

    assert sha == hashlib.sha256(truth.read_bytes()).hexdigest()

    # the stored figures are evaluate_scores of (truth, the model's scores) joined on id
    pairs = query(db_file, "select t.is_converted::int, s.conversion_probability from read_csv(?) as t "
                           "join main.scored_leads as s on s.id = t.id", [str(truth)])
    y = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    expected = evaluate_scores(y, p, cutoff)
    assert positives == int(y.sum()) and rate == pytest.approx(y.mean())
    assert f1 == pytest.approx(expected.f1) and best_f1 == pytest.approx(expected.best_f1)
    assert (auc, ap) == (pytest.approx(expected.auc), pytest.approx(expected.average_precision))
    assert (ll, brier, flagged) == (pytest.approx(expected.log_loss), pytest.approx(expected.brier),
                                    pytest.approx(expected.flagged_share))
    assert best_f1 >= f1
    # the F1 interval: the bootstrap of these leads, stored, printed and repeatable
    low, high = query(db_file, "select f1_ci95_low, f1_ci95_high from ops.evaluations")[0]
    assert [low, high] == f1_intervals(y, p >= cutoff)["f1_ci95"] and low <= f1 <= high < 1
    assert f"F1, 95% interval  {low:.4f} to {high:.4f} (bootstrap of these {SCORE_ROWS} leads" in run.stdout

    # report files live under data/reports/evaluations, the model folder is untouched
    report = Path(report_path)
    assert report.parent == data / "reports" / "evaluations"
    assert report.name.startswith("evaluation-") and report.suffix == ".json"
    content = json.loads(report.read_text())
    assert content["model_version"] == version and content["metrics"]["f1"] == pytest.approx(f1)
    assert report.with_suffix(".png").stat().st_size > 0
    from leadscore import model as model_mod

    model_mod.verify_checksums(data / "models" / version)

    # --model V names the same model explicitly; a second evaluation is a second row
    ok(leadscore(data, "evaluate", "--labels", str(truth), "--model", version))
    assert query(db_file, "select count(*) from ops.evaluations where model_version = ?", [version])[0][0] == 2


def test_evaluate_reports_unmatched_ids(scored, tmp_path):
    truth = (scored / "raw" / "truth.csv").read_text().splitlines()
    labels = write(tmp_path / "more.csv", "\n".join([*truth[:11], "999999991,1", "999999992,false"]) + "\n")
    run = ok(leadscore(scored / "data", "evaluate", "--labels", str(labels)))
    assert "10 matched, 2 unmatched of 12 labeled" in run.stdout
    assert "2 labeled id(s) have no score" in run.stderr and "999999991, 999999992" in run.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("id,is_converted\n999999991,1\n999999992,0\n", "none of its 2 ids has a score from model"),
        ("id,is_converted\n1,maybe\n", "line 2, column is_converted: 'maybe' is not a label"),
        ("id,label\n1,1\n", "no 'is_converted' column"),
    ],
)
def test_evaluate_bad_input_exits_1_with_one_line(scored, tmp_path, content, expected):
    labels = write(tmp_path / "labels.csv", content)
    before = query(scored / "data" / "leadscore.duckdb", "select count(*) from ops.evaluations")[0][0]
    run = leadscore(scored / "data", "evaluate", "--labels", str(labels))
    assert run.returncode == 1
    assert run.stderr.startswith("leadscore evaluate: error: ") and expected in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    after = query(scored / "data" / "leadscore.duckdb", "select count(*) from ops.evaluations")[0][0]
    assert after == before


def test_evaluate_missing_file_and_unknown_model(scored, tmp_path):
    run = leadscore(scored / "data", "evaluate", "--labels", str(tmp_path / "nope.csv"))
    assert run.returncode == 1 and "nope.csv: no such file" in run.stderr
    run = leadscore(scored / "data", "evaluate", "--labels", str(scored / "raw" / "truth.csv"), "--model", "v0-none")
    assert run.returncode == 1 and "model version v0-none is not in ops.model_registry" in run.stderr


def test_leads_whose_outcome_evaluate_recorded_leave_the_call_list_at_once(pipeline_template, tmp_path):
    """call_list is the open leads: once `leadscore evaluate` has recorded a lead's outcome
    (ops.known_outcomes) it is no longer one to call, without another dbt run. The other leads
    keep their rank."""
    root = copy_pipeline(pipeline_template, tmp_path)
    data, db_file = root / "data", root / "data" / "leadscore.duckdb"
    before = query(db_file, "select id, rank from main.call_list order by rank")
    assert len(before) == SCORE_ROWS
    truth = (pipeline_template / "truth.csv").read_text().splitlines()
    labels = write(tmp_path / "first_100.csv", "\n".join(truth[:101]) + "\n")
    known = {int(line.split(",")[0]) for line in truth[1:101]}
    ok(leadscore(data, "evaluate", "--labels", str(labels)))
    after = query(db_file, "select id, rank from main.call_list order by rank")
    assert after == [(i, r) for i, r in before if i not in known] and len(after) == SCORE_ROWS - 100
    assert query(db_file, "select count(*) from ops.known_outcomes")[0][0] == 100
