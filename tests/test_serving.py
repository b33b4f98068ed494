"""serving.py: the read-only snapshot analysts query (published whole, swapped in atomically,
no WAL or temp file left behind) and the competition-format export. In process, on small
hand-made tables; the snapshot under a running nightly is in test_nightly.py."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from helpers import rows_of, run, train_rows, write_csv
from leadscore import faults, serving, tables
from leadscore.errors import LeadscoreError

SCORED = """
    create or replace table main.scored_leads as
    select * from (values
        ('L1', 11::bigint, 0.91::double, true,  timestamp '2026-01-01 00:00:00'),
        ('L2', 12,         0.12,         false, timestamp '2026-01-01 00:00:00'),
        ('L3', null,       0.55,         true,  timestamp '2026-01-01 00:00:00')
    ) as t(lead_id, id, conversion_probability, predicted_converted, scored_at)
"""


@pytest.fixture()
def con(db_file):
    """The main database with current scores, features and an (empty) score history."""
    c = duckdb.connect(str(db_file))
    tables.ensure_schemas(c)
    c.execute(SCORED)
    c.execute("create table main.fct_lead_features as select 'L' || i as lead_id, i * 1.5 as x from range(1, 6) t(i)")
    yield c
    c.close()


# -- publish -------------------------------------------------------------------------------------

def test_publish_copies_every_present_relation_and_skips_absent_ones(con, db_file):
    con.execute("drop table ops.evaluations")  # as in a database from before `leadscore evaluate`
    result = serving.publish(con)
    live = db_file.parent / "serving" / "leadscore.duckdb"
    assert result.path == live and result.parquet_path == live.with_name("scored_leads.parquet")
    assert result.tables["scored_leads"] == 3 and result.tables["lead_features"] == 5
    assert result.tables["score_history"] == 0  # ops.score_history exists (ensure_schemas), empty
    assert "evaluations" not in result.tables  # absent in the main database: skipped, no error
    assert "evaluations" not in [r[0] for r in rows_of(live, "select table_name from information_schema.tables")]
    assert rows_of(live, "select * from scored_leads order by lead_id") == con.execute(
        "select * from main.scored_leads order by lead_id").fetchall()
    assert rows_of(live, "select sum(x) from lead_features") == [(22.5,)]
    parquet = con.execute(f"select lead_id, id from read_parquet('{result.parquet_path}') order by lead_id").fetchall()
    assert parquet == [("L1", 11), ("L2", 12), ("L3", None)]


def test_publish_copies_under_its_memory_cap_and_gives_the_connection_its_limit_back(con, monkeypatch):
    seen = []
    copy_table = serving._comment

    def comment(c, table, described):  # runs right after each table is copied
        seen.append(c.execute("select current_setting('memory_limit')").fetchone()[0])
        return copy_table(c, table, described)

    monkeypatch.setattr(serving, "_comment", comment)
    con.execute("set memory_limit = '3GiB'")
    serving.publish(con)
    assert seen and set(seen) == {"2.0 GiB"}
    assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "3.0 GiB"
    assert serving._memory_limit("18.8 GiB") == "2048MiB" and serving._memory_limit("1.0 GiB") == "1.0 GiB"


def test_published_files_are_read_only_and_nothing_temporary_is_left(con, db_file):
    serving.publish(con)
    folder = db_file.parent / "serving"
    assert sorted(p.name for p in folder.iterdir()) == ["leadscore.duckdb", "scored_leads.parquet"]
    for p in folder.iterdir():
        assert p.stat().st_mode & 0o777 == 0o444, p.name


def test_a_new_publish_swaps_the_file_under_an_open_reader(con, db_file):
    serving.publish(con)
    live = db_file.parent / "serving" / "leadscore.duckdb"
    reader = duckdb.connect(str(live), read_only=True)
    try:
        con.execute("delete from main.scored_leads where lead_id = 'L3'")
        serving.publish(con)
        # the reader keeps its file (the old inode) and reads it whole
        assert reader.execute("select count(*) from scored_leads").fetchone()[0] == 3
    finally:
        reader.close()
    assert rows_of(live, "select count(*) from scored_leads") == [(2,)]  # the next connection: new file


def test_a_publish_that_fails_before_the_swap_leaves_the_snapshot_as_it_was(con, db_file, monkeypatch):
    serving.publish(con)
    folder = db_file.parent / "serving"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def crash(name, detail=""):
        if name == "publish.before_swap":
            raise OSError("disk full")

    monkeypatch.setattr(faults, "pause_point", crash)
    con.execute("delete from main.scored_leads where lead_id = 'L3'")  # (all of them: NoCurrentScores)
    with pytest.raises(OSError, match="disk full"):
        serving.publish(con)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # same files, same bytes, no temp


def test_publish_removes_a_stale_wal_and_the_leftovers_of_a_killed_publish(con, db_file):
    folder = db_file.parent / "serving"
    folder.mkdir(parents=True)
    leftovers = [folder / ".leadscore.duckdb.dead0001.tmp", folder / ".leadscore.duckdb.dead0001.tmp.wal",
                 folder / ".scored_leads.parquet.dead0001.tmp"]
    for f in [*leftovers, folder / "leadscore.duckdb.wal"]:
        f.write_bytes(b"partial")
    (folder / "notes.txt").write_text("an analyst's file")  # not ours: kept
    serving.publish(con)
    assert not any(f.exists() for f in leftovers)
    assert not (folder / "leadscore.duckdb.wal").exists()
    assert (folder / "notes.txt").exists()
    assert rows_of(folder / "leadscore.duckdb", "select count(*) from scored_leads") == [(3,)]


def _register(con, version: str) -> None:
    """A model row in ops.model_registry, current (registry.current_version reads it)."""
    con.execute("update ops.model_registry set is_current = false")
    con.execute(
        "insert into ops.model_registry (model_version, trained_at, cutoff, is_current, feature_hash, feature_list, "
        "train_rows, train_positive_rate, target_prevalence_mode, ensemble, artifact_dir, checksums_sha256) "
        "values (?, timestamp '2026-01-02 00:00:00', 0.4, true, 'h', '[]', 10, 0.1, 'none', 'single', 'x', 'c')",
        [version])


def test_publish_refuses_when_the_current_model_has_no_scores_and_keeps_the_snapshot(con, db_file):
    """After `train` (or `models rollback`) to a model that has scored nothing, main.scored_leads is
    empty: publishing it would replace the analysts' last scores with none."""
    serving.publish(con)
    folder = db_file.parent / "serving"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _register(con, "v20260102T000000Z-0000beef")
    con.execute("delete from main.scored_leads")  # the view shows the current model's scores: none
    _add_run(con, "s20260101T000000000000Z-aaaaaa", 4)  # an older model's run, not yet in a file
    with pytest.raises(serving.NoCurrentScores) as refused:
        serving.publish(con)
    message = str(refused.value)
    assert "model v20260102T000000Z-0000beef is current and has scored no leads" in message
    assert "run `leadscore score`" in message and f"the snapshot {folder / 'leadscore.duckdb'} is unchanged" in message
    # the same files with the same bytes: no new history file, no temp file
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert rows_of(folder / "leadscore.duckdb", "select count(*) from scored_leads") == [(3,)]


def test_publish_without_a_current_model_or_scores_says_so_and_writes_no_snapshot(con, db_file, capsys):
    con.execute("delete from main.scored_leads")
    con.close()
    code, out, err = run(capsys, "publish")
    assert code == 1 and out == ""
    assert err.startswith("leadscore publish: error: nothing to publish: no model is current, so there are no "
                          "scores (run `leadscore train`, then `leadscore score`); no snapshot written")
    assert not (db_file.parent / "serving" / "leadscore.duckdb").exists()


def test_publish_command_succeeds_and_reports(con, db_file, capsys):
    con.close()
    code, out, err = run(capsys, "publish")
    assert code == 0, err
    assert err == "" and out.strip()
    assert rows_of(db_file.parent / "serving" / "leadscore.duckdb", "select count(*) from scored_leads") == [(3,)]


# -- export-submission ---------------------------------------------------------------------------

def _read(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_writes_each_id_once_in_id_order_as_0_or_1(con, tmp_path):
    # an older database may hold an id twice: the lead scored most recently speaks for it
    con.execute("insert into main.scored_leads values ('L0', 12, 0.99, true, timestamp '2026-02-01 00:00:00'), "
                "('L9', 5, 0.01, false, timestamp '2026-01-01 00:00:00')")
    out = tmp_path / "sub" / "submission.csv"
    assert serving.export_submission(con, out) == 3
    assert out.read_text().splitlines()[0] == "id,is_converted"
    assert _read(out) == [{"id": "5", "is_converted": "0"}, {"id": "11", "is_converted": "1"},
                          {"id": "12", "is_converted": "1"}]
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]  # no temp file left


def test_export_refuses_without_scores_and_keeps_an_earlier_file(con, tmp_path):
    out = tmp_path / "submission.csv"
    out.write_text("earlier export\n")
    con.execute("update main.scored_leads set id = null")
    with pytest.raises(LeadscoreError, match="nothing to export: no scored lead has an id"):
        serving.export_submission(con, out)
    assert out.read_text() == "earlier export\n"
    con.execute("drop table main.scored_leads")
    with pytest.raises(LeadscoreError, match="main.scored_leads does not exist"):
        serving.export_submission(con, out)


def test_export_and_publish_with_nothing_to_write_say_so(db_file, tmp_path, capsys):
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


# -- column comments and the serving views ---------------------------------------------------------

def _manifest(path: Path) -> Path:
    """A dbt manifest.json holding what `descriptions` reads: models, a source, another node."""
    import json

    path.write_text(json.dumps({
        "nodes": {
            "model.leadscore.scored_leads": {
                "resource_type": "model", "name": "scored_leads",
                "description": "Current scores.\n\n```sql\nselect 1;\n```",
                "columns": {"lead_id": {"description": "The  lead,\n its key."},
                            "conversion_probability": {"description": "Probability 0..1."},
                            "id": {"description": ""}},
            },
            "model.leadscore.call_list": {"resource_type": "model", "name": "call_list", "description": "",
                                          "columns": {"lead_id": {"description": "Lead to call."}}},
            "test.leadscore.not_null_x": {"resource_type": "test", "name": "not_null_x", "description": "no"},
        },
        "sources": {
            "source.leadscore.ops.nightly_runs": {
                "resource_type": "source", "schema": "ops", "name": "nightly_runs", "identifier": "nightly_runs",
                "description": "One row per run.", "columns": {"status": {"description": "How it ended."}},
            },
        },
    }))
    return path


def test_descriptions_read_models_and_sources_of_a_manifest(tmp_path):
    found = serving.descriptions(_manifest(tmp_path / "manifest.json"))
    assert set(found) == {"main.scored_leads", "main.call_list", "ops.nightly_runs"}
    # the table's first paragraph, whitespace folded; columns without a description left out
    assert found["main.scored_leads"] == serving.Description(
        "Current scores.", {"lead_id": "The lead, its key.", "conversion_probability": "Probability 0..1."})
    assert found["main.call_list"].table is None
    assert serving.descriptions(None) == {} and serving.descriptions(tmp_path / "missing.json") == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert serving.descriptions(tmp_path / "broken.json") == {}


def test_the_snapshot_carries_the_views_and_the_dbt_descriptions_as_comments(con, db_file, tmp_path):
    con.execute("create view main.call_list as select lead_id, id from main.scored_leads "
                "where predicted_converted order by conversion_probability desc")
    result = serving.publish(con, _manifest(tmp_path / "manifest.json"))
    live = result.path
    assert result.tables["call_list"] == 2
    assert rows_of(live, "select lead_id from call_list") == [("L1",), ("L3",)]
    assert rows_of(live, "select comment from duckdb_tables() where table_name = 'scored_leads'") == [
        ("Current scores.",)]
    comments = dict(rows_of(live, "select column_name, comment from duckdb_columns() "
                                  "where table_name = 'scored_leads'"))
    assert comments == {"lead_id": "The lead, its key.", "id": None,
                        "conversion_probability": "Probability 0..1.", "predicted_converted": None,
                        "scored_at": None}
    assert rows_of(live, "select comment from duckdb_columns() where table_name = 'nightly_runs' "
                         "and column_name = 'status'") == [("How it ended.",)]
    assert result.columns_described == 4  # 2 of scored_leads, call_list's lead_id, nightly_runs' status
    assert "4 column comments" in result.summary()


def test_a_snapshot_without_a_manifest_is_published_without_comments(con, db_file, tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "manifest_path", lambda: None)
    result = serving.publish(con)
    assert result.columns_described == 0 and result.tables["scored_leads"] == 3
    assert rows_of(result.path, "select count(comment) from duckdb_columns() where table_name = 'scored_leads'") == [
        (0,)]


def test_the_failure_path_comments_nightly_runs_too(con, db_file, tmp_path, monkeypatch):
    manifest = _manifest(tmp_path / "manifest.json")
    monkeypatch.setattr(serving, "manifest_path", lambda: manifest)
    serving.publish(con)
    result = serving.publish_run_log(con)
    assert result is not None and result.columns_described == 1
    assert rows_of(result.path, "select comment from duckdb_columns() where table_name = 'nightly_runs' "
                                "and column_name = 'status'") == [("How it ended.",)]


# -- score history: one immutable file per run ------------------------------------------------------

def _add_run(con, run_id: str, n: int, model: str = "v1") -> None:
    con.execute(
        "insert into ops.score_history (lead_id, model_version, run_id, scored_at, conversion_probability, "
        "predicted_converted, cutoff, rank_in_run, decile_in_run, reason_1) "
        "select 'L' || i, ?, ?, timestamp '2026-01-01 00:00:00', 1.0 / (i + 1), i < 2, 0.4, i + 1, 1, 'r' || i "
        "from range(?) t(i)", [model, run_id, n])


def test_score_history_is_written_once_per_run_and_read_through_the_snapshot(con, db_file, tmp_path):
    folder = db_file.parent / "serving"
    _add_run(con, "s20260101T000000000000Z-aaaaaa", 4)
    first = serving.publish(con, _manifest(tmp_path / "manifest.json"))
    files = sorted((folder / "score_history").iterdir())
    assert [f.name.split(".")[:2] for f in files] == [["s20260101T000000000000Z-aaaaaa", "4"]]
    written = {f.name: f.stat().st_mtime_ns for f in files}
    assert all(f.stat().st_mode & 0o777 == 0o444 for f in files)
    assert first.tables["score_history"] == 4

    _add_run(con, "s20260102T000000000000Z-bbbbbb", 3)
    second = serving.publish(con)
    files = sorted((folder / "score_history").iterdir())
    assert len(files) == 2 and second.tables["score_history"] == 7
    # the first run's file was not written again: the same file, untouched
    assert {f.name: f.stat().st_mtime_ns for f in files if f.name in written} == written
    # a reader sees the whole history, with the columns and types of ops.score_history
    live = second.path
    assert rows_of(live, "select * from score_history order by run_id, lead_id") == con.execute(
        "select * from ops.score_history order by run_id, lead_id").fetchall()
    assert rows_of(live, "select column_name, data_type from duckdb_columns() where table_name = 'score_history' "
                         "order by column_index") == con.execute(
        "select column_name, data_type from duckdb_columns() where schema_name = 'ops' "
        "and table_name = 'score_history' order by column_index").fetchall()
    assert not any(p.name.startswith(".") for p in folder.rglob("*"))  # no temp file left


def test_a_reader_of_the_old_snapshot_keeps_its_history_after_a_publish(con, db_file):
    _add_run(con, "r1", 2)
    serving.publish(con)
    live = db_file.parent / "serving" / "leadscore.duckdb"
    reader = duckdb.connect(str(live), read_only=True)
    try:
        _add_run(con, "r2", 5)
        serving.publish(con)
        # the old snapshot names only the files of its own runs
        assert reader.execute("select run_id, count(*) from score_history group by all").fetchall() == [("r1", 2)]
    finally:
        reader.close()
    assert rows_of(live, "select run_id, count(*) from score_history group by all order by 1") == [("r1", 2), ("r2", 5)]


def test_a_run_whose_rows_changed_or_a_new_column_is_written_again(con, db_file):
    _add_run(con, "r1", 3)
    serving.publish(con)
    con.execute("delete from ops.score_history where lead_id = 'L0'")
    assert serving.publish(con).tables["score_history"] == 2
    live = db_file.parent / "serving" / "leadscore.duckdb"
    assert rows_of(live, "select lead_id from score_history order by 1") == [("L1",), ("L2",)]
    con.execute("alter table ops.score_history add column note varchar")
    serving.publish(con)
    assert rows_of(live, "select count(note), count(*) from score_history") == [(0, 2)]
    names = sorted(p.name for p in (db_file.parent / "serving" / "score_history").iterdir())
    assert len(names) == 3  # 3 rows, 2 rows, 2 rows with the new column: older files are kept for old readers


def test_history_files_of_a_killed_publish_are_removed_and_odd_run_ids_stay_in_the_folder(con, db_file):
    folder = db_file.parent / "serving" / "score_history"
    folder.mkdir(parents=True)
    (folder / ".r1.3.abcd1234.parquet.dead0001.tmp").write_bytes(b"partial")
    _add_run(con, "../../escape", 1)
    serving.publish(con)
    names = [p.name for p in folder.iterdir()]
    assert len(names) == 1 and names[0].startswith("x") and "/" not in names[0]
    assert rows_of(db_file.parent / "serving" / "leadscore.duckdb", "select run_id from score_history") == [
        ("../../escape",)]


def test_the_history_view_carries_the_descriptions_and_survives_a_failed_runs_publish(con, db_file, tmp_path,
                                                                                    monkeypatch):
    import json

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"sources": {"source.leadscore.ops.score_history": {
        "resource_type": "source", "schema": "ops", "name": "score_history", "identifier": "score_history",
        "description": "Every score.", "columns": {"run_id": {"description": "The run."}}}}}))
    monkeypatch.setattr(serving, "manifest_path", lambda: manifest)
    _add_run(con, "r1", 2)
    result = serving.publish(con)
    assert rows_of(result.path, "select comment from duckdb_views() where view_name = 'score_history'") == [
        ("Every score.",)]
    assert rows_of(result.path, "select comment from duckdb_columns() where table_name = 'score_history' "
                                "and column_name = 'run_id'") == [("The run.",)]
    assert serving.publish_run_log(con) is not None
    assert rows_of(result.path, "select count(*) from score_history") == [(2,)]
