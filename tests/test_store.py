"""The DuckDB history: schema, migrations, round-trips and the errors a user can meet."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from hwaccel.errors import HwaccelError
from hwaccel.history.store import SCHEMA_VERSION, Store
from hwaccel.types import BenchmarkResult, Classification, HardwareInfo

# The predecessor's columns (from its spec): every one must still exist.
PREDECESSOR_RESULTS = ("id", "model_id", "model_type", "hardware", "success", "load_time",
                       "inference_time", "memory_usage", "error", "timestamp", "output_shape")
PREDECESSOR_DETECTION = ("id", "hardware_type", "available", "name", "features", "timestamp")


def columns(path: Path, table: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT column_name FROM information_schema.columns "
                            "WHERE table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def test_new_file_has_current_schema_and_predecessor_columns(tmp_db):
    with Store(tmp_db) as store:
        assert store.schema_version() == SCHEMA_VERSION
    results = columns(tmp_db, "hardware_results")
    detection = columns(tmp_db, "hardware_detection")
    assert set(PREDECESSOR_RESULTS) <= results, set(PREDECESSOR_RESULTS) - results
    assert set(PREDECESSOR_DETECTION) <= detection, set(PREDECESSOR_DETECTION) - detection


def test_reopening_applies_each_migration_once(tmp_db):
    for _ in range(3):
        with Store(tmp_db) as store:
            assert store.schema_version() == SCHEMA_VERSION
    with duckdb.connect(str(tmp_db), read_only=True) as conn:
        rows = conn.execute("SELECT version, count(*) FROM schema_version GROUP BY version "
                            "ORDER BY version").fetchall()
    assert rows == [(v, 1) for v in range(1, SCHEMA_VERSION + 1)]


def test_results_round_trip(tmp_db):
    classification = Classification(model="tiny:bert", family="embedding",
                                     subfamily="masked_lm", pipeline="text", model_type="bert")
    ok = BenchmarkResult(
        model="tiny:bert", backend="cpu", device="cpu", success=True, load_time_s=0.25,
        cold_ms=12.5, iterations=20, p50_ms=4.0, p90_ms=5.0, p99_ms=6.5, mean_ms=4.25,
        stdev_ms=0.5, min_ms=3.5, max_ms=7.0, cv=0.5 / 4.25, throughput=470.5, batch_size=2,
        seq_len=16, threads=2, output_shapes={"logits": [2, 16, 1024]}, baseline_rss_mb=300.0,
        peak_rss_mb=412.5, load_avg=0.75, versions={"torch": "9.9", "python": "3.11.7"},
        hardware_fingerprint="0123456789abcdef", wall_time_s=9.5, plugin="cpu")
    failed = BenchmarkResult(model="tiny:gpt2", backend="cpu", device="cpu", success=False,
                             error="no result within the time limit of 3 s; killed",
                             error_category="timeout", batch_size=1, seq_len=32)
    before = utcnow()
    with Store(tmp_db) as store:
        ok_id = store.insert_result(ok, classification, "run-1")
        failed_id = store.insert_result(failed, None, "run-1")
        rows = {r["id"]: r for r in store.query("SELECT * FROM hardware_results")}
    after = utcnow()
    assert ok_id != failed_id
    assert set(rows) == {ok_id, failed_id}

    row = rows[ok_id]
    assert row["model_id"] == "tiny:bert"
    assert row["model_type"] == "bert"
    assert row["hardware"] == "cpu"
    assert row["device"] == "cpu"
    assert row["success"] is True
    assert row["load_time"] == pytest.approx(0.25)
    assert row["inference_time"] == pytest.approx(0.00425)  # mean 4.25 ms in seconds
    assert row["memory_usage"] == pytest.approx(412.5)  # the peak RSS in MiB
    assert row["error"] is None
    assert json.loads(row["output_shape"]) == {"logits": [2, 16, 1024]}
    assert before - dt.timedelta(seconds=1) <= row["timestamp"] <= after + dt.timedelta(seconds=1)
    assert row["run_id"] == "run-1"
    assert (row["family"], row["subfamily"], row["pipeline"]) == ("embedding", "masked_lm",
                                                                 "text")
    assert (row["p50_ms"], row["p90_ms"], row["p99_ms"]) == (4.0, 5.0, 6.5)
    assert (row["min_ms"], row["max_ms"], row["stdev_ms"]) == (3.5, 7.0, 0.5)
    assert row["cold_ms"] == 12.5
    assert row["throughput"] == pytest.approx(470.5)
    assert (row["iterations"], row["batch_size"], row["seq_len"], row["threads"]) == (20, 2,
                                                                                     16, 2)
    assert row["baseline_rss_mb"] == 300.0
    assert row["load_avg"] == 0.75
    assert row["wall_time_s"] == 9.5
    assert json.loads(row["versions"]) == {"torch": "9.9", "python": "3.11.7"}
    assert row["hardware_fingerprint"] == "0123456789abcdef"
    assert row["plugin"] == "cpu"
    assert row["precision"] == "fp32"

    row = rows[failed_id]
    assert row["model_id"] == "tiny:gpt2"
    assert row["success"] is False
    assert row["error"] == "no result within the time limit of 3 s; killed"
    assert row["error_category"] == "timeout"
    assert row["model_type"] is None and row["family"] is None
    assert row["inference_time"] is None
    assert row["memory_usage"] is None
    assert row["output_shape"] is None
    assert row["load_time"] is None


def test_detection_rows_join_features_with_commas(tmp_db):
    present = HardwareInfo(backend="cpu", device="cpu", name="Test CPU", available=True,
                           memory_total_bytes=8 * 2**30, capabilities=("fp32", "avx", "avx2"),
                           details={"physical_cores": 2}, plugin="cpu")
    absent = HardwareInfo(backend="cuda", device="cuda", name="cuda", available=False,
                          reason="no NVIDIA driver")
    with Store(tmp_db) as store:
        store.insert_detection([present, absent], "run-7")
        rows = store.query("SELECT * FROM hardware_detection ORDER BY id")
    assert len(rows) == 2
    first, second = rows
    assert first["id"] != second["id"]
    assert (first["hardware_type"], first["available"], first["name"]) == ("cpu", True,
                                                                           "Test CPU")
    assert first["features"] == "fp32,avx,avx2"
    assert first["memory_total_bytes"] == 8 * 2**30
    assert json.loads(first["details"]) == {"physical_cores": 2}
    assert first["run_id"] == "run-7" and first["plugin"] == "cpu"
    assert re.fullmatch(r"[0-9a-f]{16}", first["hardware_fingerprint"])
    assert first["timestamp"] is not None
    assert (second["hardware_type"], second["available"]) == ("cuda", False)
    assert second["features"] == ""
    assert second["reason"] == "no NVIDIA driver"
    assert second["hardware_fingerprint"] != first["hardware_fingerprint"]


def test_newer_schema_is_refused_with_one_line(tmp_db):
    Store(tmp_db).close()
    with duckdb.connect(str(tmp_db)) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    with pytest.raises(HwaccelError) as excinfo:
        Store(tmp_db)
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(tmp_db) in message
    assert str(SCHEMA_VERSION + 1) in message


HOLDER = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
          "print('ready', flush=True); time.sleep(3)")


def test_an_open_waits_for_the_holder_within_its_bound(tmp_db):
    Store(tmp_db).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        began = time.monotonic()
        with pytest.raises(HwaccelError) as excinfo:
            Store(tmp_db, wait_s=0.5)
        message = str(excinfo.value)
        assert 0.5 <= time.monotonic() - began < 5
        assert "\n" not in message and str(tmp_db) in message
        # a plain duckdb process, not hwaccel: named as what it is
        assert f"held by another process (PID {holder.pid}: -c import duckdb" in message
        with Store(tmp_db, wait_s=30) as store:  # opens once the holder lets go, 3 s on
            assert time.monotonic() - began > 1.5
            assert store.query("SELECT count(*) AS n FROM hardware_results") == [{"n": 0}]
    finally:
        holder.kill()
        holder.wait()


def test_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "x.duckdb"
    path.write_bytes(os.urandom(16384))
    with pytest.raises(HwaccelError) as excinfo:
        Store(path)
    assert str(path) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_parent_that_is_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(HwaccelError) as excinfo:
        Store(blocker / "results.duckdb")
    assert "\n" not in str(excinfo.value)


def test_a_version_1_file_gains_max_abs_diff_and_keeps_its_rows(tmp_db):
    from hwaccel.history.store import MIGRATIONS

    conn = duckdb.connect(str(tmp_db))
    conn.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    conn.execute(MIGRATIONS[0])
    conn.execute("INSERT INTO schema_version VALUES (1, now())")
    conn.execute("INSERT INTO hardware_results (model_id, success) VALUES ('old', true)")
    conn.close()
    result = BenchmarkResult(model="new", backend="openvino", device="CPU", success=True,
                             max_abs_diff=3e-6)
    with Store(tmp_db) as store:
        store.insert_result(result, None, "run")
        rows = store.query("SELECT model_id, max_abs_diff FROM hardware_results ORDER BY id")
    assert [(r["model_id"], r["max_abs_diff"]) for r in rows] == [("old", None), ("new", 3e-6)]


def test_bulk_rows_go_in_together_and_config_keys_are_found(tmp_db):
    from hwaccel.history.store import result_row

    results = [BenchmarkResult(model=f"tiny:m{i}", backend="cpu", device="cpu", success=True,
                               p50_ms=float(i + 1)) for i in range(3)]
    with Store(tmp_db) as store:
        store.insert_rows("hardware_results", [
            result_row(r, None, "bulk", config_key=f"key-{i}") for i, r in enumerate(results)])
        assert store.finished_config_keys(["key-0", "key-2", "key-9"]) == {"key-0", "key-2"}
        assert store.finished_config_keys([]) == set()
        with pytest.raises(ValueError, match="same columns"):
            store.insert_rows("hardware_results", [{"model_id": "a"}, {"hardware": "b"}])
        with pytest.raises(ValueError, match="unknown result columns"):
            result_row(results[0], None, "bulk", colour="red")
        got = store.query("SELECT model_id, p50_ms FROM hardware_results ORDER BY id")
    assert got == [{"model_id": f"tiny:m{i}", "p50_ms": float(i + 1)} for i in range(3)]
