"""``hwaccel history`` and ``hwaccel query``: reading the database, never changing it."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from hwaccel.history.store import Store
from hwaccel.types import BenchmarkResult, Classification

BERT = Classification(model="tiny:bert", family="embedding", subfamily="masked_lm",
                      pipeline="text", model_type="bert")


def fill(db) -> None:
    """Two runs: one with a pass and an absent backend, one with a failure."""
    ok = BenchmarkResult(model="tiny:bert", backend="cpu", device="cpu", success=True,
                         p50_ms=2.0, mean_ms=2.5, iterations=20)
    absent = BenchmarkResult(model="tiny:bert", backend="cuda", device="cuda", success=False,
                             error_category="unavailable", error="cuda is absent: no GPU")
    crash = BenchmarkResult(model="tiny:bert", backend="openvino", device="CPU", success=False,
                            error_category="crash", error="job process died of SIGSEGV")
    with Store(db) as store:
        store.start_run("run-a", "matrix", 2, {}, "node-1")
        store.insert_result(ok, BERT, "run-a", source="matrix")
        store.insert_result(absent, BERT, "run-a", source="matrix")
        store.finish_run("run-a", "finished")
        store.insert_result(crash, BERT, "run-b", source="benchmark")


def test_history_lists_runs_with_their_counts(tmp_db):
    fill(tmp_db)
    proc = run_cli("history", "--db", str(tmp_db), "--json")
    assert proc.returncode == 0, proc.stderr
    runs = {r["run_id"]: r for r in json.loads(proc.stdout)}
    assert set(runs) == {"run-a", "run-b"}
    assert (runs["run-a"]["passed"], runs["run-a"]["failed"], runs["run-a"]["not_tested"]) == \
        (1, 0, 1)
    assert runs["run-a"]["status"] == "finished" and runs["run-a"]["command"] == "matrix"
    assert (runs["run-b"]["passed"], runs["run-b"]["failed"]) == (0, 1)
    assert runs["run-b"]["command"] == "benchmark"  # no runs row: named by its source


def test_history_filters_rows_by_backend_and_run_prefix(tmp_db):
    fill(tmp_db)
    rows = json.loads(run_cli("history", "--db", str(tmp_db), "--backend", "openvino",
                              "--json").stdout)
    assert [(r["hardware"], r["error_category"]) for r in rows] == [("openvino", "crash")]
    rows = json.loads(run_cli("history", "--db", str(tmp_db), "--run", "run-a",
                              "--json").stdout)
    assert sorted(r["hardware"] for r in rows) == ["cpu", "cuda"]


def test_query_runs_sql_and_refuses_to_write(tmp_db):
    fill(tmp_db)
    proc = run_cli("query", "SELECT hardware, p50_ms FROM hardware_results WHERE success",
                   "--db", str(tmp_db), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"hardware": "cpu", "p50_ms": 2.0}]
    for sql, says in (("DELETE FROM hardware_results", "DELETE statements are refused"),
                      ("SELEC 1", "query failed:")):
        proc = run_cli("query", sql, "--db", str(tmp_db))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("hwaccel: error: ") and says in proc.stderr, proc.stderr
    with Store(tmp_db, read_only=True) as store:
        assert len(store.query("SELECT * FROM hardware_results")) == 3


def test_query_touches_no_file_and_installs_nothing(tmp_db, tmp_path):
    fill(tmp_db)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    target = tmp_path / "written.csv"
    for sql in (f"COPY (SELECT 'x') TO '{target}'", f"EXPORT DATABASE '{tmp_path / 'dump'}'",
                f"SELECT * FROM read_text('{secret}')", f"SELECT * FROM glob('{tmp_path}/*')",
                "INSTALL httpfs", "SET enable_external_access = true",
                f"SELECT * FROM read_csv('{secret}')"):
        proc = run_cli("query", sql, "--db", str(tmp_db))
        assert proc.returncode == 2, (sql, proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "do not read me" not in proc.stdout + proc.stderr
    assert not target.exists() and not (tmp_path / "dump").exists()


@pytest.mark.parametrize("sql", ["", ";", "  ;  ", "SELECT 1; SELECT 2"])
def test_an_empty_query_or_several_statements_is_a_usage_error(tmp_db, sql):
    fill(tmp_db)
    proc = run_cli("query", sql, "--db", str(tmp_db))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "empty" in proc.stderr or "one SQL statement at a time" in proc.stderr


def test_a_query_past_its_time_limit_stops(tmp_db):
    fill(tmp_db)
    proc = run_cli("query", "SELECT count(*) FROM range(100000000000)", "--timeout", "0.5",
                   "--db", str(tmp_db))
    assert proc.returncode == 2 and "query stopped after 0.5 s" in proc.stderr, proc.stderr
    for bad in ("nan", "0", "-1", "inf"):
        proc = run_cli("query", "SELECT 1", "--timeout", bad, "--db", str(tmp_db))
        assert proc.returncode == 2 and "--timeout must be" in proc.stderr, proc.stderr


def test_a_query_prints_at_most_its_row_limit(tmp_db):
    fill(tmp_db)
    proc = run_cli("query", "SELECT * FROM range(50) t(i)", "--max-rows", "10", "--json",
                   "--db", str(tmp_db))
    assert proc.returncode == 0, proc.stderr
    assert [row["i"] for row in json.loads(proc.stdout)] == list(range(10))
    assert "the first 10 rows only" in proc.stderr


def test_missing_database_is_one_line(tmp_path):
    proc = run_cli("history", "--db", str(tmp_path / "none.duckdb"))
    assert proc.returncode != 0 and "no database at" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none.duckdb").exists()
