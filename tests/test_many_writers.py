"""Many hwaccel processes on one database: concurrent runs keep every row, readers read during
them, a killed run is marked ``interrupted``, and a file held too long fails in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from conftest import run_cli
from hwaccel.history.store import Store

FAST = ("--iterations", "1", "--warmup", "0", "--min-seconds", "0")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def start_cli(*args: str) -> subprocess.Popen[str]:
    """Start ``python -m hwaccel ARGS`` without waiting for it; Ctrl-C reaches it as from a
    terminal even when these tests run in the background of a script (which ignores it)."""
    return subprocess.Popen([sys.executable, "-m", "hwaccel", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **ONE_THREAD},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def start_slow_benchmark(db) -> tuple[subprocess.Popen[str], str]:
    """Start a benchmark that times for a minute; return it and its run id once it runs."""
    proc = start_cli("benchmark", "tiny:bert", "--backend", "cpu", "--min-seconds", "60",
                     "--max-seconds", "120", "--db", str(db), "--json")
    deadline = time.monotonic() + 60
    while not db.is_file() or not stored_runs(db):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    (run_id,) = stored_runs(db)
    assert stored_runs(db)[run_id]["status"] == "running"
    return proc, run_id


def history(db) -> list[dict]:
    """The runs ``hwaccel history`` lists now; fails the test if the read fails."""
    proc = run_cli("history", "--db", str(db), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def stored_runs(db) -> dict[str, dict]:
    """Every ``runs`` row with the count of its stored results, by run id."""
    with Store(db, read_only=True) as store:
        rows = store.query("SELECT s.*, (SELECT count(*) FROM hardware_results r "
                           "WHERE r.run_id = s.run_id) AS stored FROM runs s")
    return {r["run_id"]: r for r in rows}


def test_two_benchmarks_and_a_matrix_keep_every_row_while_history_reads(tmp_db):
    Store(tmp_db).close()
    db = str(tmp_db)
    procs = [start_cli("benchmark", "tiny:bert", "--backend", "cpu", *FAST, "--db", db,
                       "--json"),
             start_cli("benchmark", "tiny:bert", "--backend", "cpu", *FAST, "--db", db,
                       "--json"),
             start_cli("matrix", "--models", "tiny:bert", "--backends", "cpu", *FAST,
                       "--db", db, "--json")]
    polls, seen_running = 0, False
    try:
        while any(p.poll() is None for p in procs):
            runs = history(tmp_db)  # every poll must succeed while the runs write
            polls += 1
            seen_running |= any(r["status"] == "running" for r in runs)
            time.sleep(0.5)  # leave the CPU to the runs
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    reported = [json.loads(out) for out, _ in outputs]
    assert polls >= 3 and seen_running  # history read while runs were in progress
    runs = stored_runs(tmp_db)
    expected = {reported[0]["run_id"]: len(reported[0]["results"]),
                reported[1]["run_id"]: len(reported[1]["results"]),
                reported[2]["run_id"]: len(reported[2]["cells"])}
    assert set(expected.values()) == {1}
    assert {run_id: runs[run_id]["stored"] for run_id in expected} == expected
    assert all(runs[run_id]["status"] == "finished" for run_id in expected)
    listed = {r["run_id"]: r for r in history(tmp_db)}
    assert {run_id: listed[run_id]["cells"] for run_id in expected} == expected


def _pretend_owner(db, run_id: str, host: str, pid: int, started: float) -> None:
    """Record a ``running`` run as owned by the process ``pid`` of ``host``."""
    with Store(db) as store:
        store.start_run(run_id, "benchmark", 1, {}, host)
        store.conn.execute("UPDATE runs SET host = ?, pid = ?, process_started = ? "
                           "WHERE run_id = ?", [host, pid, started, run_id])


def test_a_killed_run_is_marked_interrupted_and_live_runs_are_left_alone(tmp_db):
    slow, killed = start_slow_benchmark(tmp_db)
    try:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    finally:
        slow.kill()
        slow.wait()
    # readers, which cannot write, already show it interrupted; the table says running
    assert {r["run_id"]: r["status"] for r in history(tmp_db)}[killed] == "interrupted"
    report = run_cli("report", "--db", str(tmp_db), "--run", killed[:8], "--json")
    assert [r["status"] for r in json.loads(report.stdout)["runs"]] == ["interrupted"]
    assert stored_runs(tmp_db)[killed]["status"] == "running"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = socket.gethostname()
        started = psutil.Process(sleeper.pid).create_time()
        _pretend_owner(tmp_db, "live", here, sleeper.pid, started)
        _pretend_owner(tmp_db, "reused-pid", here, sleeper.pid, started - 3600)
        _pretend_owner(tmp_db, "other-host", "another-host", slow.pid, started)
        with Store(tmp_db):  # the next open for writing marks what is gone
            pass
        runs = stored_runs(tmp_db)
        assert {run_id: r["status"] for run_id, r in runs.items()} == {
            killed: "interrupted", "reused-pid": "interrupted", "live": "running",
            "other-host": "running"}
        assert runs[killed]["finished"] is not None and runs["live"]["finished"] is None
        listed = {r["run_id"]: r["status"] for r in history(tmp_db)}
        assert listed[killed] == "interrupted"  # listed although it stored no row
        report = run_cli("report", "--db", str(tmp_db), "--run", killed[:8], "--json")
        assert report.returncode == 0, report.stderr
        assert [(r["run_id"], r["status"], r["rows"]) for r in json.loads(report.stdout)
                ["runs"]] == [(killed, "interrupted", 0)]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_ctrl_c_marks_a_benchmark_interrupted(tmp_db):
    proc, run_id = start_slow_benchmark(tmp_db)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130 and err.strip() == "hwaccel: interrupted", err
    run = stored_runs(tmp_db)[run_id]
    assert run["status"] == "interrupted" and run["finished"] is not None


HOLDER = ("import sys, time; from hwaccel.history.store import Store; s = Store(sys.argv[1]); "
          "print('ready', flush=True); time.sleep(60)")


def test_a_file_held_past_the_bound_fails_in_one_line(tmp_db):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for args in (("benchmark", "tiny:bert", "--backend", "cpu", *FAST), ("history",)):
            began = time.monotonic()
            proc = run_cli(*args, "--db", str(tmp_db), env={"HWACCEL_DB_WAIT_S": "1"},
                           timeout=120)
            assert proc.returncode == 1, (args, proc.stderr)
            assert "Traceback" not in proc.stderr + proc.stdout
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            assert len(lines) == 1, proc.stderr
            assert lines[0].startswith(f"hwaccel: error: database {tmp_db} is held by another "
                                       f"hwaccel process (PID {holder.pid}"), lines[0]
            assert "HWACCEL_DB_WAIT_S" in lines[0]
            if args[0] == "history":
                assert 1 <= time.monotonic() - began < 30  # it waited, then gave up
    finally:
        holder.kill()
        holder.wait()
    with Store(tmp_db, read_only=True) as store:  # nothing ran while the file was held
        assert store.query("SELECT count(*) AS n FROM runs") == [{"n": 0}]


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_bad_wait_setting_is_a_usage_error(tmp_db, value):
    Store(tmp_db).close()
    proc = run_cli("history", "--db", str(tmp_db), env={"HWACCEL_DB_WAIT_S": value})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("hwaccel: error: HWACCEL_DB_WAIT_S must be"), proc.stderr
