"""The DuckDB history of benchmark results and hardware detections.

One file (``--db``, default under the user cache folder). DuckDB lets one process at a time
open a file for writing, and none read it meanwhile, so every ``hwaccel`` process opens the
database only for one batch of writes (or one read) and closes it at once; job processes hand
their results back to the ``hwaccel`` process that started them. An open that finds the file
held by another process retries for up to ``HWACCEL_DB_WAIT_S`` seconds (default
:data:`DEFAULT_WAIT_S`), then fails with one line naming the holder. So several
``benchmark`` and ``matrix`` runs can share one database while ``history`` and ``report``
read it. Tables follow the predecessor's schema (``hardware_results``,
``hardware_detection``) with the measurement columns added; ``schema_version`` records the
migrations applied.

Writes are short: every result is committed as soon as it is known, so a killed run loses at
most the job in flight. Several rows at once go in as one statement (``INSERT ... SELECT
UNNEST``), which is atomic and about 200 times faster than row by row. ``runs`` holds one row
per ``hwaccel benchmark`` or ``hwaccel matrix`` run: what was planned, how it ended, and the
process that owns it (:mod:`hwaccel.running.run_owner`). Every open for writing marks
``interrupted``
the ``running`` runs of this host whose process is gone.

Units: ``load_time`` and ``inference_time`` (the mean latency) are seconds,
``memory_usage`` is the peak resident memory of the benchmark's job in MiB (before any
reference copy was loaded), ``*_ms`` columns are milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.env_numbers import env_number
from hwaccel.running import run_owner
from hwaccel.types import BenchmarkResult, Classification, HardwareInfo

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE SEQUENCE hardware_results_id;
    CREATE TABLE hardware_results (
        id INTEGER PRIMARY KEY DEFAULT nextval('hardware_results_id'),
        model_id VARCHAR, model_type VARCHAR, hardware VARCHAR, success BOOLEAN,
        load_time DOUBLE, inference_time DOUBLE, memory_usage DOUBLE, error VARCHAR,
        timestamp TIMESTAMP, output_shape VARCHAR,
        run_id VARCHAR, device VARCHAR, family VARCHAR, subfamily VARCHAR, pipeline VARCHAR,
        error_category VARCHAR, batch_size INTEGER, seq_len INTEGER, iterations INTEGER,
        cold_ms DOUBLE, p50_ms DOUBLE, p90_ms DOUBLE, p99_ms DOUBLE, mean_ms DOUBLE,
        stdev_ms DOUBLE, min_ms DOUBLE, max_ms DOUBLE, cv DOUBLE, throughput DOUBLE,
        precision VARCHAR, threads INTEGER, baseline_rss_mb DOUBLE, load_avg DOUBLE,
        wall_time_s DOUBLE, versions VARCHAR, hardware_fingerprint VARCHAR, plugin VARCHAR
    );
    CREATE SEQUENCE hardware_detection_id;
    CREATE TABLE hardware_detection (
        id INTEGER PRIMARY KEY DEFAULT nextval('hardware_detection_id'),
        hardware_type VARCHAR, available BOOLEAN, name VARCHAR, features VARCHAR,
        timestamp TIMESTAMP,
        run_id VARCHAR, device VARCHAR, reason VARCHAR, memory_total_bytes BIGINT,
        memory_available_bytes BIGINT, details VARCHAR, hardware_fingerprint VARCHAR,
        plugin VARCHAR
    );
    """,
    "ALTER TABLE hardware_results ADD COLUMN max_abs_diff DOUBLE;",
    """
    ALTER TABLE hardware_results ADD COLUMN device_memory_usage DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN details VARCHAR;
    """,
    """
    ALTER TABLE hardware_results ADD COLUMN source VARCHAR;
    ALTER TABLE hardware_results ADD COLUMN test_status VARCHAR;
    ALTER TABLE hardware_results ADD COLUMN test_summary VARCHAR;
    ALTER TABLE hardware_results ADD COLUMN test_time_s DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN config_key VARCHAR;
    ALTER TABLE hardware_results ADD COLUMN node VARCHAR;
    ALTER TABLE hardware_results ADD COLUMN cpu_affinity VARCHAR;
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, command VARCHAR, started TIMESTAMP, finished TIMESTAMP,
        status VARCHAR, planned INTEGER, settings VARCHAR, node VARCHAR,
        hwaccel_version VARCHAR
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN host VARCHAR;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN process_started DOUBLE;
    """,
    """
    ALTER TABLE hardware_results ADD COLUMN new_tokens INTEGER;
    ALTER TABLE hardware_results ADD COLUMN ttft_ms DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN tpot_p50_ms DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN tpot_p90_ms DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN tokens_per_s DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN token_match DOUBLE;
    ALTER TABLE hardware_results ADD COLUMN kv_cache VARCHAR;
    ALTER TABLE runs ADD COLUMN scenario VARCHAR;
    ALTER TABLE runs ADD COLUMN scenario_file VARCHAR;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: seconds an open waits for another process to release the file, unless HWACCEL_DB_WAIT_S
#: says otherwise; far above the longest batch another process holds it for
DEFAULT_WAIT_S = 60.0
WAIT_ENV = "HWACCEL_DB_WAIT_S"


def wait_seconds() -> float:
    """Return how long an open waits for the file: ``HWACCEL_DB_WAIT_S``, else the default."""
    seconds = env_number(WAIT_ENV, allow_zero=True)
    return DEFAULT_WAIT_S if seconds is None else seconds


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# Columns a caller may set beside the result itself (see ``result_row``).
CONTEXT_COLUMNS = ("source", "test_status", "test_summary", "test_time_s", "config_key",
                   "node", "cpu_affinity")


def result_row(result: BenchmarkResult, classification: Classification | None, run_id: str,
               **context: Any) -> dict[str, Any]:
    """Return the ``hardware_results`` row of one result; ``context`` fills CONTEXT_COLUMNS."""
    unknown = set(context) - set(CONTEXT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown result columns: {sorted(unknown)}")
    c = classification
    return {
        "model_id": result.model, "model_type": c.model_type if c else None,
        "hardware": result.backend, "success": result.success,
        "load_time": result.load_time_s,
        "inference_time": result.mean_ms / 1000.0 if result.mean_ms is not None else None,
        "memory_usage": result.peak_rss_mb, "error": result.error, "timestamp": _now(),
        "output_shape": json.dumps(result.output_shapes) if result.output_shapes else None,
        "run_id": run_id, "device": result.device, "family": c.family if c else None,
        "subfamily": c.subfamily if c else None, "pipeline": c.pipeline if c else None,
        "error_category": result.error_category, "batch_size": result.batch_size,
        "seq_len": result.seq_len, "iterations": result.iterations,
        "cold_ms": result.cold_ms, "p50_ms": result.p50_ms, "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms, "mean_ms": result.mean_ms, "stdev_ms": result.stdev_ms,
        "min_ms": result.min_ms, "max_ms": result.max_ms, "cv": result.cv,
        "throughput": result.throughput, "precision": result.precision,
        "threads": result.threads, "baseline_rss_mb": result.baseline_rss_mb,
        "load_avg": result.load_avg, "wall_time_s": result.wall_time_s,
        "versions": json.dumps(result.versions, sort_keys=True),
        "hardware_fingerprint": result.hardware_fingerprint, "plugin": result.plugin,
        "max_abs_diff": result.max_abs_diff, "device_memory_usage": result.device_peak_mb,
        "details": json.dumps(result.details, sort_keys=True) if result.details else None,
        "new_tokens": result.new_tokens, "ttft_ms": result.ttft_ms,
        "tpot_p50_ms": result.tpot_p50_ms, "tpot_p90_ms": result.tpot_p90_ms,
        "tokens_per_s": result.tokens_per_s, "token_match": result.token_match,
        "kv_cache": result.kv_cache,
        **{name: context.get(name) for name in CONTEXT_COLUMNS},
    }


class Store:
    """An open hwaccel database; use as a context manager, and briefly, so the file is
    released for the other processes.

    :param read_only: open without the write lock (no migrations); for queries.
    :param wait_s: while another process holds the file, retry for this many seconds before
        giving up with a clear error (default: :func:`wait_seconds`).
    """

    def __init__(self, path: Path | str, *, read_only: bool = False,
                 wait_s: float | None = None):
        import duckdb

        self.path = Path(path).expanduser()
        if read_only and not self.path.is_file():
            raise HwaccelError(f"no database at {self.path} (run 'hwaccel matrix' or "
                               "'hwaccel benchmark' first, or pass --db)")
        wait = wait_seconds() if wait_s is None else wait_s
        deadline = time.monotonic() + wait
        while True:
            try:
                if not read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                message = str(exc).splitlines()[0]
                if "lock" not in message.lower():
                    raise HwaccelError(f"cannot open database {self.path}: {message}") from None
                if time.monotonic() >= deadline:
                    raise HwaccelError(self._held_message(message, wait)) from None
                time.sleep(random.uniform(0.05, 0.15))  # noqa: S311 - spreads the retries
            except (duckdb.Error, OSError) as exc:
                raise HwaccelError(f"cannot open database {self.path}: "
                                   f"{str(exc).splitlines()[0]}") from None
        if not read_only:
            try:
                self.migrate()
                self.mark_gone_runs()
            except BaseException:
                self.conn.close()
                raise

    def _held_message(self, message: str, wait: float) -> str:
        found = re.search(r"\(PID (\d+)\)", message)
        holder = run_owner.describe(int(found[1])) if found else "another process"
        return (f"database {self.path} is held by {holder}; still held after {wait:g} s "
                f"of waiting ({WAIT_ENV}), try again once it has finished")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (and release the file lock)."""
        self.conn.close()

    def schema_version(self) -> int:
        """Return the schema version of the open database (0 for a new file)."""
        self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                          "(version INTEGER, applied_at TIMESTAMP)")
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> None:
        """Apply every migration the database has not had yet, each in one transaction."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise HwaccelError(f"database {self.path} has schema {current}, newer than this "
                               f"hwaccel ({SCHEMA_VERSION}); upgrade hwaccel")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            self.conn.execute("BEGIN")
            self.conn.execute(MIGRATIONS[version - 1])
            self.conn.execute("INSERT INTO schema_version VALUES (?, ?)", [version, _now()])
            self.conn.execute("COMMIT")

    def insert_result(self, result: BenchmarkResult, classification: Classification | None,
                      run_id: str, **context: Any) -> int:
        """Insert one benchmark result (success or failure) and return its id."""
        return self._insert("hardware_results",
                            result_row(result, classification, run_id, **context))

    def insert_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Insert many rows with the same keys in one atomic statement."""
        if not rows:
            return
        names = list(rows[0])
        if any(list(row) != names for row in rows):
            raise ValueError("bulk rows must all have the same columns in the same order")
        columns = [[row[name] for row in rows] for name in names]
        unnest = ", ".join(f"UNNEST(${i + 1})" for i in range(len(names)))
        self.conn.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {unnest}", columns)

    def insert_detection(self, hardware: list[HardwareInfo], run_id: str) -> None:
        """Insert one row per detected device (or absent backend), in one statement."""
        from hwaccel.history.provenance import fingerprint

        now = _now()
        self.insert_rows("hardware_detection", [{
            "hardware_type": info.backend, "available": info.available, "name": info.name,
            "features": ",".join(info.capabilities), "timestamp": now, "run_id": run_id,
            "device": info.device, "reason": info.reason,
            "memory_total_bytes": info.memory_total_bytes,
            "memory_available_bytes": info.memory_available_bytes,
            "details": json.dumps(info.details, sort_keys=True, default=str),
            "hardware_fingerprint": fingerprint(info), "plugin": info.plugin}
            for info in hardware])

    def start_run(self, run_id: str, command: str, planned: int, settings: dict[str, Any],
                  node: str, scenario: str | None = None,
                  scenario_file: str | None = None) -> None:
        """Record that a run began, with what it planned, how it measures, this process as
        its owner, and the scenario file it ran (its text and path), if any."""
        from importlib.metadata import version

        owner = run_owner.this_process()
        self._insert("runs", {"run_id": run_id, "command": command, "started": _now(),
                              "status": "running", "planned": planned,
                              "settings": json.dumps(settings, sort_keys=True), "node": node,
                              "hwaccel_version": version("hwaccel-core"), "host": owner.host,
                              "pid": owner.pid, "process_started": owner.started,
                              "scenario": scenario, "scenario_file": scenario_file},
                     returning=None)

    def finish_run(self, run_id: str, status: str) -> None:
        """Record how a run ended: ``finished`` or ``interrupted``."""
        self.conn.execute("UPDATE runs SET finished = ?, status = ? WHERE run_id = ?",
                          [_now(), status, run_id])

    def gone_runs(self) -> list[str]:
        """The ids of the ``running`` runs of this host whose process is gone (or whose pid
        now belongs to another process). Runs of other hosts, and runs recorded before
        owners were (no pid), are not among them. Readers show these as ``interrupted``;
        the next open for writing records it (:meth:`mark_gone_runs`)."""
        if "pid" not in {row[0] for row in self.conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'"
        ).fetchall()}:
            return []
        host = run_owner.this_process().host
        running = self.conn.execute(
            "SELECT run_id, pid, process_started FROM runs "
            "WHERE status = 'running' AND host = ? AND pid IS NOT NULL", [host]).fetchall()
        return [run_id for run_id, pid, started in running if run_owner.is_gone(pid, started)]

    def with_gone_runs_interrupted(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` (each with ``run_id`` and ``status``) with the status of a gone run
        (:meth:`gone_runs`) read as ``interrupted``, for readers that cannot write it."""
        gone = set(self.gone_runs()) if any(r.get("status") == "running" for r in rows) \
            else set()
        return [{**row, "status": "interrupted"} if row.get("status") == "running"
                and row.get("run_id") in gone else row for row in rows]

    def mark_gone_runs(self) -> list[str]:
        """Mark ``interrupted`` the runs :meth:`gone_runs` finds; return their ids."""
        gone = self.gone_runs()
        if gone:
            self.conn.execute("UPDATE runs SET status = 'interrupted', finished = ? "
                              "WHERE status = 'running' AND list_contains(?, run_id)",
                              [_now(), gone])
        return gone

    def finished_config_keys(self, keys: list[str]) -> set[str]:
        """Return those of ``keys`` for which a result is already recorded."""
        if not keys:
            return set()
        rows = self.conn.execute("SELECT DISTINCT config_key FROM hardware_results "
                                 "WHERE list_contains($1, config_key)", [keys]).fetchall()
        return {r[0] for r in rows}

    def _insert(self, table: str, row: dict[str, Any], returning: str | None = "id") -> int:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        tail = f" RETURNING {returning}" if returning else ""
        found = self.conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks}){tail}",
                                  list(row.values())).fetchone()
        return int(found[0]) if returning else 0

    def latest_results(self, models: list[str] | None = None, *, measured: bool = False,
                       by_fingerprint: bool = False) -> list[dict[str, Any]]:
        """The latest row of every (model, backend, device), oldest first.

        :param models: only these model ids (all when ``None``).
        :param measured: only rows whose benchmark succeeded with a peak memory; the latest
            such row, even when a later attempt failed.
        :param by_fingerprint: one row per hardware fingerprint too (devices of the same
            name on different machines, as a cluster's nodes record them, stay apart).
        """
        where = ["TRUE"]
        params: list[Any] = []
        if models is not None:
            where.append("list_contains($1, model_id)")
            params.append(list(models))
        if measured:
            where.append("success AND memory_usage IS NOT NULL")
        return self.query(f"""
            SELECT * FROM hardware_results WHERE {' AND '.join(where)}
            QUALIFY row_number() OVER (PARTITION BY model_id, hardware, device
                                       {', hardware_fingerprint' if by_fingerprint else ''}
                                       ORDER BY timestamp DESC, id DESC) = 1
            ORDER BY id""", params)

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""
        cursor = self.conn.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
