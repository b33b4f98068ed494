"""Issue 10 (reliability), the parts that need no dbt run: what the door lets in, how a lead is
known across loads, how bad files and CSV errors are reported, the shared writer lock, exit codes.
The pipeline-level halves (dbt build on the accepted rows, quarantine in a real nightly, SIGKILL
during dbt, the serving WAL) are in test_nightly.py."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

from leadscore import cli, ingest
from leadscore.input_format import LEAD_COLUMNS
from test_ingest import assert_fails_unchanged, run, score_rows, train_rows, write_csv

REPO = Path(__file__).resolve().parents[1]


def rows_of(db_file: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- 1. every domain rule a dbt test enforces on input holds at the door ---------------------

BAD_VALUES = [
    ("lead_owner", "", "required value missing"),
    ("customer_idx", " ", "required value missing"),
    ("bant_submit", "2", "not one of 0, 0.25, 0.5, 0.75, 1"),
    ("bant_submit", "0.3", "not one of 0, 0.25, 0.5, 0.75, 1"),
    ("com_reg_ver_win_rate", "1.5", "out of range: must be between 0 and 1"),
    ("ver_win_rate_x", "-0.1", "out of range: must be between 0 and 1"),
    ("ver_win_ratio_per_bu", "7", "out of range: must be between 0 and 1"),
    ("ver_cus", "2", "not one of 0, 1"),
    ("ver_pro", "-1", "not one of 0, 1"),
    ("idit_strategic_ver", "5", "not one of 0, 1"),
    ("historical_existing_cnt", "-3", "out of range: must be between 0 and 1e+06"),
    ("lead_desc_length", "-1", "out of range: must be between 0 and 1e+06"),
]


def test_1_domain_rules_are_enforced_at_ingest_with_a_reason(db_file, tmp_path, capsys):
    rows = train_rows(len(BAD_VALUES) + 2, start=500)
    for i, (column, value, _) in enumerate(BAD_VALUES):
        rows[i][column] = value
    p = write_csv(tmp_path / "domain.csv", rows)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 2 rows" in out
    assert f"{len(BAD_VALUES)} row(s) rejected" in err
    got = rows_of(db_file, "select source_row, column_name, coalesce(trim(raw_value), ''), reason "
                  "from raw.rejected_rows order by source_row")
    assert got == [(i + 1, c, v.strip(), r) for i, (c, v, r) in enumerate(BAD_VALUES)]
    # what got in satisfies every rule the dbt source tests check
    assert rows_of(db_file, "select count(*) from raw.leads where lead_owner is null or customer_idx is null "
                   "or bant_submit not in (0, .25, .5, .75, 1) or com_reg_ver_win_rate not between 0 and 1") == [(0,)]


def test_1_dbt_source_tests_mirror_the_rules_in_one_place():
    """input_format.LEAD_COLUMNS is where a rule lives; the dbt tests on raw.leads say the same."""
    sources = yaml.safe_load((REPO / "models_sql" / "staging" / "_sources.yml").read_text())
    leads = next(t for t in sources["sources"][0]["tables"] if t["name"] == "leads")
    tests = {c["name"]: c.get("data_tests", []) for c in leads["columns"]}
    for col in LEAD_COLUMNS:
        declared = tests.get(col.name, [])
        names = {t if isinstance(t, str) else next(iter(t)) for t in declared}
        assert ("not_null" in names) == col.required, col.name
        if col.allowed is not None:
            acc = next(t["accepted_values"] for t in declared if isinstance(t, dict) and "accepted_values" in t)
            assert sorted(acc["arguments"]["values"]) == sorted(col.allowed), col.name
            assert acc.get("config", {}).get("severity", "error") == "error", col.name
        elif col.min_value is not None:
            rng = next(t["between"] for t in declared if isinstance(t, dict) and "between" in t)
            assert (rng["arguments"]["min_value"], rng["arguments"]["max_value"]) == (col.min_value, col.max_value)
        else:
            assert names <= {"not_null"}, col.name


# -- 2. score files are score files -----------------------------------------------------------

def test_2_labels_in_a_score_file_are_set_aside_and_every_row_is_scored(db_file, tmp_path, capsys):
    rows = score_rows(6)
    for i, r in enumerate(rows):
        r["is_converted"] = ["1", "0", "True", "False", "", "1"][i]
    p = write_csv(tmp_path / "submission_filled.csv", rows, with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(p))
    assert code == 0 and "(0 labeled, 6 to score)" in out
    assert "5 label(s) in a file loaded as a score file set aside in raw.set_aside_labels, never trained on" in err
    assert rows_of(db_file, "select count(*), count(is_converted) from raw.leads") == [(6, 0)]
    aside = rows_of(db_file, "select id, raw_value, is_converted from raw.set_aside_labels order by source_row")
    assert aside == [(1001, "1", True), (1008, "0", False), (1015, "True", True), (1022, "False", False), (1036, "1", True)]


def test_2_role_from_the_file_when_not_given(db_file, tmp_path, capsys):
    t = write_csv(tmp_path / "train.csv", train_rows(3))
    rows = score_rows(2)
    rows[0]["is_converted"] = "1"
    s = write_csv(tmp_path / "submission.csv", rows, with_id=True)
    code, out, err = run(capsys, "ingest", str(t), str(s))
    assert code == 0, err
    assert "read as a train file: no 'id' column" in out
    assert "read as a score file: has an 'id' column" in out
    assert rows_of(db_file, "select file_name, declared_kind, train_rows, score_rows from raw.loads order by 1") == [
        ("submission.csv", "score", 0, 2), ("train.csv", "train", 3, 0)]


# -- 3. a lead's identity across loads -----------------------------------------------------------

def test_3_an_id_is_loaded_once_across_files_and_loads(db_file, tmp_path, capsys):
    first = write_csv(tmp_path / "day1.csv", score_rows(4), with_id=True)
    assert run(capsys, "ingest", "--score", str(first))[0] == 0
    # the same file re-exported with two more leads, and another file of the same run with one of them
    again = write_csv(tmp_path / "day1_reexport.csv", score_rows(6), with_id=True)
    other = write_csv(tmp_path / "other.csv", score_rows(1, start=1029) + score_rows(1, start=5000), with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(again), "--score", str(other))
    assert code == 0
    assert "day1_reexport.csv: loaded 2 rows" in out and "other.csv: loaded 1 rows" in out
    assert "id 1001 already loaded (load 1, data row 1); a lead is loaded once" in err
    assert rows_of(db_file, "select count(*), count(distinct id) from raw.leads") == [(7, 7)]
    assert rows_of(db_file, "select reason from raw.rejected_rows where raw_value = '1029'") == [
        ("id 1029 already loaded (load 2, data row 5); a lead is loaded once",)]


def test_3_a_reexported_file_without_ids_loads_only_its_new_rows(db_file, tmp_path, capsys):
    rows = train_rows(4, start=300)
    rows.append(dict(rows[0]))  # a true duplicate within one file is kept
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t1.csv", rows)))[0] == 0
    more = rows + [dict(rows[0])] + train_rows(2, start=900)
    code, out, _ = run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t2.csv", more)))
    assert code == 0 and "t2.csv: loaded 3 rows" in out  # the third copy of row 1, and two new rows
    assert rows_of(db_file, "select count(*) from raw.leads") == [(8,)]


# -- 4. a bad file is quarantined, the rest loads, it is not retried until it changes --------------

def test_4_quarantine_records_and_does_not_retry(db_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a_good.csv", train_rows(3))
    (folder / "b_empty.csv").write_bytes(b"")
    write_csv(folder / "c_header_only.csv", [])
    (folder / "d_junk.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # a picture
    files = ingest.discover_inputs(folder)
    con = duckdb.connect(str(db_file))
    try:
        results = ingest.ingest_files(con, files, quarantine=True)
        assert [r.status for r in results] == ["loaded", "refused", "refused", "refused"]
        assert "file is empty" in results[1].message and "header only" in results[2].message
        assert "not valid UTF-8" in results[3].message
        recorded = con.execute("select file_name, status from raw.loads order by file_name").fetchall()
        assert recorded == [("a_good.csv", "loaded"), ("b_empty.csv", "refused"), ("c_header_only.csv", "refused"),
                            ("d_junk.csv", "refused")]
        again = ingest.ingest_files(con, files, quarantine=True)
        assert [r.status for r in again] == ["skipped", "refused", "refused", "refused"]
        assert all("not retried until the file changes" in r.message for r in again[1:])
        assert con.execute("select count(*) from raw.loads").fetchall() == [(4,)]
        write_csv(folder / "c_header_only.csv", train_rows(2, start=700))  # fixed: loads next time
        third = ingest.ingest_files(con, ingest.discover_inputs(folder), quarantine=True)
        assert third[2].status == "loaded"
    finally:
        con.close()


# -- 5. sane ranges at the door, no traceback on any path -------------------------------------------

def test_5_huge_numbers_are_rejected_at_the_door(db_file, tmp_path, capsys):
    rows = train_rows(3, start=800)
    rows[0]["historical_existing_cnt"] = "1e300"
    rows[1]["lead_desc_length"] = "1e18"
    p = write_csv(tmp_path / "huge.csv", rows)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 1 rows" in out
    assert rows_of(db_file, "select column_name, reason from raw.rejected_rows order by source_row") == [
        ("historical_existing_cnt", "out of range: must be between 0 and 1e+06"),
        ("lead_desc_length", "out of range: must be between 0 and 1e+06"),
    ]


def test_5_an_unexpected_error_is_one_line_without_traceback(db_file, monkeypatch, capsys):
    from leadscore import commands

    def boom(args):
        raise OverflowError("value too large to convert to float32")

    monkeypatch.setattr(commands, "cmd_publish", boom)
    code = cli.main(["publish"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected OverflowError: value too large" in err and "leadscore-errors.log" in err
    assert "Traceback" in (db_file.parent / "leadscore-errors.log").read_text()


# -- 6. CSV errors name the file, line and reason ---------------------------------------------------

def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_6_ragged_row_names_the_line(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "ragged.csv", train_rows(5, start=600))
    lines = _lines(p)
    lines[3] = lines[3] + ",extra"
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "ragged.csv", "line 4", "expected 29 fields like the header, found 30")


def test_6_unterminated_quote_names_the_line(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "quote.csv", train_rows(5, start=600))
    lines = _lines(p)
    lines[2] = lines[2].replace("/Lima/Peru", '"/Lima/Peru', 1)
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "quote.csv", "line 3", "quote")


def test_6_oversized_field_names_the_line(seeded, tmp_path, capsys):
    rows = train_rows(3, start=600)
    rows[1]["product_modelname"] = "x" * 3_000_000
    p = write_csv(tmp_path / "blob.csv", rows)
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "blob.csv", "line 3", "limit")


def test_6_semicolon_file_gets_the_delimiter_hint(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "semi.csv", train_rows(2, start=600))
    p.write_text(p.read_text().replace(",", ";"))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "semi.csv", "';'-separated")


def test_6_case_only_header_mismatch_is_pointed_out(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "case.csv", train_rows(2, start=600))
    p.write_text(p.read_text().replace("lead_owner", "Lead_Owner", 1))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "'Lead_Owner' should be 'lead_owner'")


def test_6_gzip_files_load_and_nightly_finds_every_spelling(db_file, tmp_path, capsys):
    plain = write_csv(tmp_path / "plain.csv", train_rows(3, start=600))
    disguised = tmp_path / "disguised.csv"
    disguised.write_bytes(gzip.compress(plain.read_bytes()))
    code, out, err = run(capsys, "ingest", "--train", str(disguised))
    assert code == 0 and "loaded 3 rows" in out and "gzip-compressed" in err
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.csv", "b.CSV", "c.csv.gz", "notes.txt", ".hidden.csv"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p, _ in ingest.discover_inputs(folder)] == ["a.csv", "b.CSV", "c.csv.gz"]


# -- 9. one lock for every writing command, checked before the heavy imports -----------------------

def test_9_every_writer_is_busy_while_another_holds_the_lock(db_file, tmp_path):
    env = dict(os.environ, LEADSCORE_DB=str(db_file), LEADSCORE_HOME=str(REPO))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from leadscore import runlock\n"
         "with runlock.exclusive('nightly'):\n    print('held', flush=True); time.sleep(120)"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        probe = (
            "import sys; from leadscore import cli; rc = cli.main(sys.argv[1:]); "
            "heavy = [m for m in ('duckdb', 'pandas', 'sklearn', 'dbt') if m in sys.modules]; "
            "print('heavy', heavy); sys.exit(rc)"
        )
        for argv in (["ingest", "--train", "x.csv"], ["build"], ["train"], ["score"], ["publish"],
                     ["nightly", "--input", str(tmp_path)]):
            r = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 75, (argv, r.stderr)
            assert "busy: another leadscore command holds" in r.stderr and "leadscore nightly, pid" in r.stderr
            assert r.stderr.count("\n") == 1
            assert "heavy []" in r.stdout, (argv, r.stdout)
    finally:
        holder.kill()
        holder.wait()


def test_exit_codes_are_in_help_and_readme():
    out = subprocess.run([sys.executable, "-m", "leadscore.cli", "--help"], capture_output=True, text=True).stdout
    flat = " ".join(out.split())
    for fragment in ("0 done", "1 failed", "3 done, with input files refused", "75 busy"):
        assert fragment in flat
    readme = (REPO / "README.md").read_text()
    assert "## Exit codes" in readme and "| 3 |" in readme and "| 75 |" in readme


# -- 11. smaller ones ------------------------------------------------------------------------------

def test_11_duplicated_header_is_refused(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "dup.csv", train_rows(2, start=600), extra=("lead_owner",))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "dup.csv: duplicated column name in the header: lead_owner")


def test_11_input_file_is_not_a_folder(db_file, tmp_path, capsys):
    p = write_csv(tmp_path / "train.csv", train_rows(2))
    code, _, err = run(capsys, "nightly", "--input", str(p))
    assert code == 1 and "is a file, not a folder" in err


def test_11_failed_ingest_on_a_new_path_leaves_no_database_file(db_file, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    code, _, _ = run(capsys, "ingest", "--train", str(bad))
    assert code == 1 and not db_file.exists() and not Path(f"{db_file}.wal").exists()


def test_11_export_and_publish_with_nothing_to_write_say_so(db_file, tmp_path, capsys):
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t.csv", train_rows(2))))[0] == 0
    code, _, err = run(capsys, "publish")
    assert code == 1 and "nothing to publish" in err
    assert not (db_file.parent / "serving" / "leadscore.duckdb").exists()
    con = duckdb.connect(str(db_file))
    con.execute("create table main.scored_leads (lead_id varchar, id bigint, predicted_converted boolean, scored_at timestamp)")
    con.close()
    out = tmp_path / "sub.csv"
    code, _, err = run(capsys, "export-submission", "--out", str(out))
    assert code == 1 and "nothing to export: no scored lead has an id" in err and not out.exists()



def test_1_rows_let_in_by_an_earlier_version_are_moved_out(db_file, tmp_path, capsys):
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t.csv", train_rows(3, start=650))))[0] == 0
    con = duckdb.connect(str(db_file))
    con.execute("update raw.leads set bant_submit = 2 where customer_idx = 651")  # as the old door allowed
    con.close()
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "u.csv", train_rows(1, start=660))))[0] == 0
    assert rows_of(db_file, "select count(*) from raw.leads where customer_idx = 651") == [(0,)]
    assert rows_of(db_file, "select column_name, reason from raw.rejected_rows") == [
        ("bant_submit", "not one of 0, 0.25, 0.5, 0.75, 1 (loaded before this rule was enforced; moved out of raw.leads)")]


def test_6_ragged_row_past_the_sniffer_keeps_duckdbs_line_and_reason(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "long.csv", train_rows(25_002, start=10_000))
    lines = _lines(p)
    lines[25_001] = lines[25_001].rsplit(",", 1)[0]  # data row 25,001 (line 25,002) loses its label field
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "long.csv", "Line: 25002",
                           "Expected Number of Columns: 29 Found: 28")


def test_9_a_foreign_holder_of_the_database_is_waited_for(db_file, tmp_path):
    """A plain `dbt build` or a DuckDB shell holds DuckDB's own lock; a leadscore writer waits for
    it instead of failing half-way, and says busy (75) if it never lets go."""
    env = dict(os.environ, LEADSCORE_DB=str(db_file), LEADSCORE_HOME=str(REPO))
    t = write_csv(tmp_path / "t.csv", train_rows(2))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.readline(); con.close()", str(db_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        gave_up = subprocess.run([sys.executable, "-m", "leadscore.cli", "ingest", "--train", str(t)],
                                 env={**env, "LEADSCORE_DB_WAIT": "1"}, capture_output=True, text=True, timeout=120)
        assert gave_up.returncode == 75 and "busy: database" in gave_up.stderr
        waiter = subprocess.Popen([sys.executable, "-m", "leadscore.cli", "ingest", "--train", str(t)],
                                  env={**env, "LEADSCORE_DB_WAIT": "120"}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert "waiting up to 120 s" in waiter.stderr.readline()
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
        assert "loaded 2 rows" in out
    finally:
        holder.kill()
        holder.wait()
