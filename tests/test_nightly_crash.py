"""The nightly run's crash safety and concurrency: a SIGKILL while scoring or publishing changes
nothing, readers of the serving snapshot never fail while it is swapped, a second nightly exits
at once while one runs, a failed dbt build scores nothing. Each test works on its own copy of
conftest's pipeline_template (the pipeline fixture)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from leadscore import cli
from nightly_helpers import REPO, env_for, leadscore, main_db, query, serving_db, state


def _kill_at(pipeline: Path, point: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "score", "--all"] if point.startswith("score")
        else [sys.executable, "-m", "leadscore.cli", "publish"],
        env=env_for(pipeline / "data", LEADSCORE_PAUSE_AT=point, LEADSCORE_PAUSE_DIR=str(pipeline)),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    marker = pipeline / f"{point}.reached"
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, "the job ended before reaching the pause point"
        assert time.monotonic() < deadline, "pause point never reached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_during_scoring_leaves_everything_unchanged(pipeline):
    before = state(pipeline)
    _kill_at(pipeline, "score.before_commit")
    assert state(pipeline) == before
    # ... and the next run completes (it has nothing new to score: the killed run wrote nothing)
    run = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert run.returncode == 0, run.stderr
    assert state(pipeline) == before
    assert query(main_db(pipeline), "select status from ops.nightly_runs order by started_at desc limit 1") == [("succeeded",)]


def test_sigkill_during_publish_leaves_the_snapshot_unchanged(pipeline):
    run = leadscore(pipeline / "data", "score", "--all")  # new scores the snapshot does not have yet
    assert run.returncode == 0, run.stderr
    before = state(pipeline)
    _kill_at(pipeline, "publish.before_swap")
    assert state(pipeline) == before
    run = leadscore(pipeline / "data", "publish")
    assert run.returncode == 0, run.stderr
    assert query(serving_db(pipeline), "select run_id from scored_leads limit 1") == query(
        main_db(pipeline), "select run_id from main.scored_leads limit 1"
    )


def test_readers_never_fail_while_scores_are_written_and_published(pipeline):
    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                n = query(serving_db(pipeline), "select count(*) from scored_leads")[0][0]
                assert n == 400
                reads += 1
            except Exception as exc:  # any error at all is a failure
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # the nightly's writing steps (score, publish) three times: the snapshot is swapped
        # under the reader's feet each time
        for _ in range(3):
            for step in ("score", "publish"):
                run = leadscore(pipeline / "data", step, *(["--all"] if step == "score" else []))
                assert run.returncode == 0, run.stderr
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert reads > 10


def test_concurrent_nightly_exits_at_once(pipeline):
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "nightly", "--input", str(pipeline / "incoming")],
        env=env_for(pipeline / "data", LEADSCORE_PAUSE_AT="nightly.started", LEADSCORE_PAUSE_DIR=str(pipeline)),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # the first run holds the lock for sure once it reaches its first pause point
        marker = pipeline / "nightly.started.reached"
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        second = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
        assert time.monotonic() - started < 30
        assert second.returncode == 75, second.stderr
        assert "busy: another leadscore command holds" in second.stderr and "leadscore nightly, pid" in second.stderr
    finally:
        proc.kill()
        proc.wait()


def test_failed_dbt_build_scores_nothing_and_exits_nonzero(pipeline, monkeypatch, capsys):
    monkeypatch.setenv("LEADSCORE_DB", str(main_db(pipeline)))
    before = state(pipeline)
    # A var that is not a number makes the feature SQL invalid, so dbt build fails.
    from leadscore import build

    real = build.run_dbt

    def failing(args, quiet=False):
        return real([*args, "--vars", "{rare_min_count: 'not a number'}"], quiet=quiet)

    monkeypatch.setattr(build, "run_dbt", failing)
    code = cli.main(["nightly", "--input", str(pipeline / "incoming")])
    err = capsys.readouterr().err
    assert code != 0 and "dbt build" in err and "failed" in err
    assert state(pipeline)["history"] == before["history"]
    assert query(main_db(pipeline), "select status from ops.nightly_runs order by started_at desc limit 1") == [("failed",)]
