"""scored_leads after an incremental night (issue 13): ranks and deciles are over every current
score, not per scoring run; call_list gives the open leads in that order, with their reasons;
every scored lead has three reasons in the seed's words; the README's queries on the serving
snapshot run as written.

The first night is conftest's pipeline_template (generate -> nightly: ingest, dbt build, train,
score, publish; 400 score rows), shared with test_nightly; on a copy of it a second score file
arrives and a second nightly scores only its leads, in a run of its own, with the same model
(conftest's second_night, built once per test run and read by test_nightly too).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import SECOND_NIGHT_ROWS
from helpers import rows_of as query

REPO = Path(__file__).resolve().parents[1]
FIRST_SCORE_ROWS, SECOND_SCORE_ROWS = 400, SECOND_NIGHT_ROWS  # the template's score rows, then the second night's


@pytest.fixture(scope="module")
def two_nights(pipeline_template, second_night) -> Path:
    """conftest's second_night: on a copy of the template (its first night scored
    FIRST_SCORE_ROWS leads) the next day's score file arrived and a second nightly scored it."""
    assert query(main_db(pipeline_template), "select count(*) from main.scored_leads") == [(FIRST_SCORE_ROWS,)]
    return second_night


def main_db(root: Path) -> Path:
    return root / "data" / "leadscore.duckdb"


def serving_db(root: Path) -> Path:
    return root / "data" / "serving" / "leadscore.duckdb"


def test_the_second_night_scored_only_its_new_leads(two_nights):
    runs = query(main_db(two_nights), "select run_id, count(*) from main.scored_leads group by run_id order by run_id")
    assert [n for _, n in runs] == [FIRST_SCORE_ROWS, SECOND_SCORE_ROWS]
    assert query(main_db(two_nights), "select count(distinct model_version) from main.scored_leads") == [(1,)]
    # what the per-run columns look like after such a night: two leads ranked 1 in their run
    assert query(main_db(two_nights), "select count(*) from main.scored_leads where rank_in_run = 1") == [(2,)]


@pytest.mark.parametrize("where", ["main", "serving"])
def test_ranks_are_unique_and_deciles_do_not_overlap(two_nights, where):
    db = main_db(two_nights) if where == "main" else serving_db(two_nights)
    total = FIRST_SCORE_ROWS + SECOND_SCORE_ROWS
    assert query(db, "select count(*), count(distinct lead_id), count(distinct rank), min(rank), max(rank) "
                     "from scored_leads") == [(total, total, total, 1, total)]
    # rank follows the probability across both runs, ties by lead_id
    assert query(db, "select lead_id from scored_leads "
                     "qualify rank <> row_number() over (order by conversion_probability desc, lead_id)") == []
    deciles = query(db, "select decile, count(*), min(conversion_probability), max(conversion_probability), "
                        "min(rank), max(rank) from scored_leads group by decile order by decile")
    assert [d for d, *_ in deciles] == list(range(1, 11))
    sizes = [n for _, n, *_ in deciles]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == total
    for (d, _, low, _, _, last_rank), (_, _, _, next_high, next_first_rank, _) in zip(deciles, deciles[1:]):
        assert low >= next_high, f"decile {d} overlaps decile {d + 1}"
        assert last_rank + 1 == next_first_rank


def test_call_list_is_the_open_leads_in_rank_order(two_nights):
    db = main_db(two_nights)
    rows = query(db, "select rank, decile, lead_id, lead_owner, customer_idx, conversion_probability, "
                     "predicted_converted from main.call_list")
    expected = query(db, "select s.rank, s.decile, s.lead_id, s.lead_owner, s.customer_idx, "
                         "s.conversion_probability, s.predicted_converted from main.scored_leads as s "
                         "join raw.leads as l using (lead_id) where l.is_converted is null order by s.rank")
    assert rows == expected and len(rows) == FIRST_SCORE_ROWS + SECOND_SCORE_ROWS
    deciles = query(db, "select decile, margin_over_next_decile from main.scored_lead_deciles order by decile")
    assert [d for d, _ in deciles] == list(range(1, 11))
    assert all(m >= 0 for _, m in deciles[:-1]) and deciles[-1][1] is None


REASON = re.compile(r"^\S.*: (raises|lowers) the odds \([+-]\d+\.\d\d\)$")


@pytest.mark.parametrize("where", ["main", "serving"])
def test_every_scored_lead_has_three_reasons_in_the_seeds_words(two_nights, where):
    db = main_db(two_nights) if where == "main" else serving_db(two_nights)
    rows = query(db, "select lead_id, reason_1, reason_2, reason_3 from scored_leads")
    assert len(rows) == FIRST_SCORE_ROWS + SECOND_SCORE_ROWS
    features = {name for (name,) in query(main_db(two_nights), "select feature from main.feature_reasons")}
    for lead_id, *texts in rows:
        assert len(texts) == 3 and all(t and REASON.match(t) for t in texts), (lead_id, texts)
        # a seed template, not the generic '<feature> = <value>' fallback of a feature without one
        assert not any(t.split(" = ")[0] in features for t in texts), (lead_id, texts)
    # reasons differ between leads: they are the lead's own, not one global importance list
    assert len({r[1] for r in rows}) > 10
    if where == "main":
        call_list = query(db, "select lead_id, reason_1, reason_2, reason_3 from main.call_list")
        assert sorted(call_list) == sorted(rows)


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _code_blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _statements(sql: str) -> list[str]:
    """The README's SQL block, one statement per entry (comment lines dropped)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]


def test_readme_queries_run_as_written(two_nights, tmp_path):
    section = _readme_section("Querying the scores")
    (sql_block,) = _code_blocks(section, "sql")
    statements = _statements(sql_block)
    assert len(statements) == 8  # six examples, the fifth with its two `set variable` lines
    snapshot = serving_db(two_nights)
    # query 4 reads the analyst's CRM export from the folder they run it in
    contacted = query(snapshot, "select id from scored_leads where predicted_converted and id is not null limit 3")
    (tmp_path / "crm_contacts.csv").write_text("id\n" + "".join(f"{i}\n" for (i,) in contacted))

    con = duckdb.connect(str(snapshot), read_only=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        results = [None if (rel := con.sql(s)) is None else rel.fetchall() for s in statements]
    finally:
        os.chdir(cwd)
        con.close()
    top_per_owner, by_country, by_decile, not_contacted, _, _, change, call_list = results
    assert top_per_owner and by_country is not None
    assert [row[0] for row in by_decile] == list(range(1, 11))
    flagged = query(snapshot, "select count(*) from scored_leads where predicted_converted")[0][0]
    assert len(not_contacted) == flagged - len(contacted)
    assert change == [(0, None, None, 0)]  # one model so far: nothing to compare
    assert [row[0] for row in call_list] == list(range(1, 21))


def test_readme_shell_commands_run_as_written(two_nights):
    """The bash block's one-shot commands (the shell with -c, the Python one-liner), run from a
    folder laid out like the repository root: data/serving/ and .venv/bin/."""
    section = _readme_section("Querying the scores")
    commands = [line.split("  #")[0].strip() for block in _code_blocks(section, "bash")
                for line in block.splitlines() if line.startswith(".venv/bin/")]
    one_shot = [c for c in commands if " -c " in c]
    assert len(one_shot) == 2 and len(commands) == 3
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "duckdb").exists(), "the duckdb shell (duckdb-cli) comes with the dev extras: pip install -e '.[dev]'"
    expected = str(FIRST_SCORE_ROWS + SECOND_SCORE_ROWS)
    for command in one_shot:
        argv = shlex.split(command)
        argv[0] = str(venv_bin / Path(argv[0]).name)
        done = subprocess.run(argv, cwd=two_nights, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout, done.stdout
