"""The compatibility report's data, computed from the rows of the DuckDB history.

``build_report`` reads ``hardware_results`` (and ``runs``) and returns one JSON-safe dict that
``hwaccel.history.report_render`` turns into Markdown, JSON and HTML. Nothing in it is typed in:
every
status, latency, speed-up, memory figure and trend comes from recorded rows.

A *cell* is the latest row of one (model, backend, device) among the selected rows. Its status:

- ``pass``: the benchmark succeeded and the generated test passed (or none was run);
- ``not-tested``: the combination could not be tried (backend or model unavailable,
  unsupported, no node to run it); the reason is the recorded error;
- ``fail``: everything else, with the error category and message as the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from hwaccel.errors import UsageError
from hwaccel.hardware.simulators import simulated_latency
from hwaccel.history.store import Store
from hwaccel.kit.failures import NOT_RUN_CATEGORIES

NOT_TESTED_CATEGORIES = frozenset(NOT_RUN_CATEGORIES)
STATUSES = ("pass", "fail", "not-tested")

# hardware_results columns a report reads; an older database lacking some reads them as NULL.
_COLUMNS = (
    "id", "model_id", "model_type", "hardware", "device", "family", "subfamily", "pipeline",
    "success", "error", "error_category", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cv",
    "throughput", "load_time", "cold_ms", "memory_usage", "device_memory_usage",
    "max_abs_diff", "threads", "load_avg", "precision", "batch_size", "seq_len", "test_status",
    "test_summary", "run_id", "timestamp", "source", "node", "details",
)
_RUN_COLUMNS = ("run_id", "command", "started", "finished", "status", "planned", "settings",
                "node", "hwaccel_version")


def build_report(store: Store, *, run_ids: Sequence[str] | None = None,
                 reference: Sequence[str] | None = None) -> dict[str, Any]:
    """Return the report of the rows in ``store`` as a JSON-safe dict.

    :param store: an open database (read-only is enough).
    :param run_ids: report only the rows of these runs; ``None`` (or empty) reports every row.
        Trends always span the whole history of the selected cells.
    :param reference: the backends whose cells the speed-ups compare with and that come
        first; by default the last resort the loaded backend plugins declare (the CPU).
    :raises UsageError: when a requested run id has neither rows nor a ``runs`` entry.

    Keys: ``generated``, ``database``, ``run_ids``, ``summary``, ``backends`` (the reference
    first, then alphabetical), ``cells``, ``matrix``, ``failures`` (failed cells by whose failure
    they are, hwaccel's own first), ``fastest``, ``memory``, ``trends``, ``runs``.
    A caller may add ``compatibility`` before rendering.
    """
    if isinstance(run_ids, str):
        run_ids = [run_ids]
    selected = list(dict.fromkeys(run_ids)) if run_ids else None
    columns = _table_columns(store, "hardware_results")
    rows = _fetch_rows(store, columns, selected)
    run_table = _fetch_runs(store, selected)
    if selected:
        _check_run_ids(selected, rows, run_table)
    reference = reference_backends() if reference is None else tuple(reference)
    cells = latest_cells(rows, reference)
    add_speedups(cells, reference)
    backends = backend_order((c["backend"] for c in cells), reference)
    return {
        "generated": _iso(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)),
        "database": str(store.path),
        "run_ids": selected,
        "summary": summarize(cells),
        "backends": backends,
        "cells": cells,
        "matrix": build_matrix(cells, backends),
        "failures": failures_by_category(cells),
        "fastest": fastest(cells),
        "memory": peak_memory(cells, backends),
        "trends": trends(_fetch_history(store, columns), cells),
        "runs": runs(run_table, rows),
    }


def cell_status(row: dict[str, Any]) -> tuple[str, str | None]:
    """Return ``(status, reason)`` of one ``hardware_results`` row (see the module doc)."""
    test_status = row.get("test_status")
    if row.get("success"):
        if test_status in (None, "passed"):
            return "pass", None
        detail = row.get("test_summary") or row.get("error") or "no summary recorded"
        return "fail", f"test {test_status}: {detail}"
    category = row.get("error_category")
    if category in NOT_TESTED_CATEGORIES:
        return "not-tested", row.get("error") or category
    parts = [p for p in (category, row.get("error")) if p]
    return "fail", ": ".join(parts) if parts else "failed without a recorded error"


def reference_backends() -> tuple[str, ...]:
    """The backends a report compares with: the last resort the loaded backend plugins
    declare (the host CPU, whose cells hold the reference of every comparison)."""
    from hwaccel.hardware.backends import installed

    return installed().last_resort_names()


def backend_order(backends: Iterable[str], reference: Sequence[str] | None = None) -> list[str]:
    """Return the distinct backends: the ``reference`` ones first (by default
    :func:`reference_backends`), then alphabetical."""
    first = reference_backends() if reference is None else tuple(reference)
    distinct = {b for b in backends if b}
    return sorted(distinct, key=lambda b: (b not in first, b))


def latest_cells(rows: list[dict[str, Any]],
                 reference: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Return one cell per (model, backend, device): the latest of ``rows`` for it.

    ``rows`` must be in time order (oldest first); cells come sorted by pipeline, model,
    backend (in :func:`backend_order` with ``reference``) and device.
    """
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        latest[(row["model_id"], row["hardware"], row["device"])] = row
    cells = [_cell(row) for row in latest.values()]
    order = {b: i for i, b in enumerate(backend_order((c["backend"] for c in cells),
                                                      reference))}
    cells.sort(key=lambda c: (c["pipeline"] or "", c["model"] or "",
                              order.get(c["backend"], len(order)), c["device"] or ""))
    return cells


def add_speedups(cells: list[dict[str, Any]], reference: Sequence[str] | None = None) -> None:
    """Set ``speedup_vs_cpu`` on every cell: the model's CPU p50 divided by the cell's p50.

    The CPU figure is the latest passing cell of a ``reference`` backend (by default
    :func:`reference_backends`: the CPU) of the same model with the same batch size and
    sequence length; a cell without a passing p50, or without such a CPU cell, gets
    ``None``.
    """
    first = reference_backends() if reference is None else tuple(reference)
    cpu: dict[tuple[Any, ...], dict[str, Any]] = {}
    for cell in cells:
        if cell["backend"] in first and _timed(cell) and not cell["latency_of"]:
            key = (cell["model"], cell["batch_size"], cell["seq_len"])
            if key not in cpu or cell["timestamp"] > cpu[key]["timestamp"]:
                cpu[key] = cell
    for cell in cells:
        reference = cpu.get((cell["model"], cell["batch_size"], cell["seq_len"]))
        cell["speedup_vs_cpu"] = (reference["p50_ms"] / cell["p50_ms"]
                                  if reference and _timed(cell) and not cell["latency_of"]
                                  else None)


def summarize(cells: list[dict[str, Any]]) -> dict[str, int]:
    """Return the counts of cells by status, and of distinct models and backends."""
    counts = {status: sum(c["status"] == status for c in cells) for status in STATUSES}
    return {"cells": len(cells), "passed": counts["pass"], "failed": counts["fail"],
            "not_tested": counts["not-tested"], "models": len({c["model"] for c in cells}),
            "backends": len({c["backend"] for c in cells})}


def failures_by_category(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed cells grouped by category, in the order of
    :data:`hwaccel.kit.failures.FAILURE_CATEGORIES` (``harness``, hwaccel's own, first), then any
    other category an older row recorded; each group has ``category``, ``count`` and
    ``cells`` (model, pipeline, backend, device and the reason)."""
    from hwaccel.kit.failures import FAILURE_CATEGORIES

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        if cell["status"] == "fail":
            groups[cell["category"] or "unknown"].append(
                {k: cell[k] for k in ("model", "pipeline", "backend", "device", "reason")})
    order = {c: i for i, c in enumerate(FAILURE_CATEGORIES)}
    return [{"category": category, "count": len(members), "cells": members}
            for category, members in sorted(groups.items(),
                                            key=lambda g: (order.get(g[0], len(order)), g[0]))]


def build_matrix(cells: list[dict[str, Any]], backends: list[str]) -> list[dict[str, Any]]:
    """Return the (family, pipeline) x backend matrix with counts, a status and reasons.

    Each row has ``family``, ``pipeline``, ``models`` and ``entries`` (one per backend, in
    ``backends`` order; ``None`` where no cell of that row ran on the backend). An entry's
    status is ``pass`` when every tested cell passed, ``fail`` when every one failed,
    ``partial`` for a mix, ``not-tested`` when none could be tried.
    """
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        groups[(cell["family"], cell["pipeline"])].append(cell)
    matrix = []
    for (family, pipeline), members in sorted(groups.items(),
                                              key=lambda g: (g[0][0] or "", g[0][1] or "")):
        entries = {b: _matrix_entry([c for c in members if c["backend"] == b]) for b in backends}
        matrix.append({"family": family, "pipeline": pipeline,
                       "models": sorted({c["model"] for c in members}), "entries": entries})
    return matrix


def fastest(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return, per model, its passing cell with the lowest p50 (models with none are left out;
    a simulator's latency is not a device's, so it is never the fastest)."""
    best: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if _timed(cell) and not cell["latency_of"] and (cell["model"] not in best
                             or cell["p50_ms"] < best[cell["model"]]["p50_ms"]):
            best[cell["model"]] = cell
    keys = ("model", "pipeline", "backend", "device", "p50_ms", "speedup_vs_cpu", "precision",
            "batch_size", "seq_len")
    return [{k: cell[k] for k in keys} for cell in sorted(
        best.values(), key=lambda c: (c["pipeline"] or "", c["model"]))]


def peak_memory(cells: list[dict[str, Any]], backends: list[str]) -> list[dict[str, Any]]:
    """Return, per model and backend, the peak memory of its passing cells.

    ``memory_mib`` is the job's peak resident memory, ``device_memory_mib`` an accelerator's
    own peak (``None`` where the backend does not report one); ``device`` is the device of
    the cell with the highest resident peak.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        if cell["status"] == "pass" and cell["memory_mib"] is not None:
            groups[(cell["model"], cell["backend"])].append(cell)
    order = {b: i for i, b in enumerate(backends)}
    out = []
    for (model, backend), members in groups.items():
        top = max(members, key=lambda c: c["memory_mib"])
        device_peaks = [c["device_memory_mib"] for c in members
                        if c["device_memory_mib"] is not None]
        out.append({"model": model, "pipeline": top["pipeline"], "backend": backend,
                    "device": top["device"], "memory_mib": top["memory_mib"],
                    "device_memory_mib": max(device_peaks) if device_peaks else None})
    out.sort(key=lambda m: (m["pipeline"] or "", m["model"], order.get(m["backend"], 0)))
    return out


def trends(history: list[dict[str, Any]], cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the p50 history of each selected (model, backend, device) over all runs.

    ``history`` holds every successful row with a positive p50, oldest first. A series is one
    (model, backend, device) at one batch size, sequence length and precision, so that only
    like is compared with like; ``change_pct`` is the last p50 against the first, in percent
    (``None`` for a single point).
    """
    wanted = {(c["model"], c["backend"], c["device"]) for c in cells}
    series: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in history:
        if (row["model_id"], row["hardware"], row["device"]) in wanted:
            key = (row["model_id"], row["hardware"], row["device"], row["batch_size"],
                   row["seq_len"], row["precision"], simulated_latency(row["details"]))
            series[key].append({"run_id": row["run_id"], "timestamp": _iso(row["timestamp"]),
                                "p50_ms": _number(row["p50_ms"])})
    out = []
    for (model, backend, device, batch, seq_len, precision, latency_of), points in \
            series.items():
        first, last = points[0]["p50_ms"], points[-1]["p50_ms"]
        change = (last - first) / first * 100.0 if len(points) > 1 and first else None
        out.append({"model": model, "backend": backend, "device": device, "batch_size": batch,
                    "seq_len": seq_len, "precision": precision, "points": points,
                    "change_pct": change, "latency_of": latency_of})
    order = {b: i for i, b in enumerate(backend_order(t["backend"] for t in out))}
    out.sort(key=lambda t: (t["model"] or "", order.get(t["backend"], 0), t["device"] or "",
                            t["batch_size"] or 0, t["seq_len"] or 0, t["precision"] or ""))
    return out


def runs(run_table: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one entry per run: its ``runs`` table row (if any) and counts of its rows.

    Counts classify every row of the run like a cell (``passed``, ``failed``, ``not_tested``);
    runs come in the order they started (or wrote their first row).
    """
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_run[row["run_id"]].append(row)
    recorded = {r["run_id"]: r for r in run_table}
    out = []
    for run_id in dict.fromkeys([*recorded, *by_run]):
        out.append(_run_entry(run_id, recorded.get(run_id), by_run.get(run_id, [])))
    out.sort(key=lambda r: r["started"] or r["first_result"] or "")
    return out


def _run_entry(run_id: str, recorded: dict[str, Any] | None,
               members: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = [cell_status(r)[0] for r in members]
    base = dict.fromkeys(_RUN_COLUMNS) | (recorded or {})
    settings = base["settings"]
    return {
        "run_id": run_id,
        "command": base["command"] or (members[0]["source"] if members else None),
        "started": _iso(base["started"]), "finished": _iso(base["finished"]),
        "status": base["status"], "planned": base["planned"],
        "settings": json.loads(settings) if settings else None, "node": base["node"],
        "hwaccel_version": base["hwaccel_version"], "rows": len(members),
        "passed": statuses.count("pass"), "failed": statuses.count("fail"),
        "not_tested": statuses.count("not-tested"),
        "models": len({r["model_id"] for r in members}),
        "backends": backend_order(r["hardware"] for r in members),
        "first_result": _iso(members[0]["timestamp"]) if members else None,
        "last_result": _iso(members[-1]["timestamp"]) if members else None,
    }


def _matrix_entry(members: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not members:
        return None
    statuses = [c["status"] for c in members]
    passed, failed = statuses.count("pass"), statuses.count("fail")
    if passed and failed:
        status = "partial"
    elif passed:
        status = "pass"
    elif failed:
        status = "fail"
    else:
        status = "not-tested"
    reasons = sorted({c["reason"] for c in members if c["reason"]})
    return {"passed": passed, "failed": failed, "not_tested": statuses.count("not-tested"),
            "status": status, "reasons": reasons}


def _cell(row: dict[str, Any]) -> dict[str, Any]:
    status, reason = cell_status(row)
    return {
        "model": row["model_id"], "model_type": row["model_type"], "family": row["family"],
        "subfamily": row["subfamily"], "pipeline": row["pipeline"], "backend": row["hardware"],
        "device": row["device"], "status": status, "reason": reason,
        "p50_ms": _number(row["p50_ms"]), "p90_ms": _number(row["p90_ms"]),
        "p99_ms": _number(row["p99_ms"]), "mean_ms": _number(row["mean_ms"]),
        "cv": _number(row["cv"]), "throughput": _number(row["throughput"]),
        "load_time_s": _number(row["load_time"]), "cold_ms": _number(row["cold_ms"]),
        "memory_mib": _number(row["memory_usage"]),
        "device_memory_mib": _number(row["device_memory_usage"]),
        "max_abs_diff": _number(row["max_abs_diff"]), "threads": row["threads"],
        "load_avg": _number(row["load_avg"]), "precision": row["precision"],
        "batch_size": row["batch_size"], "seq_len": row["seq_len"],
        "test_status": row["test_status"], "test_summary": row["test_summary"],
        "category": row["error_category"] if status == "fail" else None,
        "source": row["source"], "node": row["node"], "run_id": row["run_id"],
        "timestamp": _iso(row["timestamp"]), "speedup_vs_cpu": None,
        "latency_of": simulated_latency(row["details"]),
    }


def _timed(cell: dict[str, Any]) -> bool:
    """Whether the cell passed with a positive p50 (so that ratios are defined)."""
    return cell["status"] == "pass" and bool(cell["p50_ms"]) and cell["p50_ms"] > 0


def _table_columns(store: Store, table: str) -> set[str]:
    rows = store.query("SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = ?", [table])
    return {r["column_name"] for r in rows}


def _select_list(columns: set[str]) -> str:
    return ", ".join(c if c in columns else f"NULL AS {c}" for c in _COLUMNS)


def _fetch_rows(store: Store, columns: set[str],
                run_ids: list[str] | None) -> list[dict[str, Any]]:
    """Return the selected rows, oldest first (by timestamp, then insertion)."""
    if "model_id" not in columns:
        return []
    where = "WHERE list_contains(?, run_id)" if run_ids else ""
    return store.query(f"SELECT {_select_list(columns)} FROM hardware_results {where} "
                       "ORDER BY timestamp, id", [run_ids] if run_ids else None)


def _fetch_history(store: Store, columns: set[str]) -> list[dict[str, Any]]:
    """Return every successful row with a positive p50 over all runs, oldest first."""
    if "p50_ms" not in columns:
        return []
    return store.query(f"SELECT {_select_list(columns)} FROM hardware_results "
                       "WHERE success AND p50_ms > 0 ORDER BY timestamp, id")


def _fetch_runs(store: Store, run_ids: list[str] | None) -> list[dict[str, Any]]:
    """Return the ``runs`` table rows (all, or those of ``run_ids``); none on old databases."""
    if "run_id" not in _table_columns(store, "runs"):
        return []
    where = "WHERE list_contains(?, run_id)" if run_ids else ""
    return store.with_gone_runs_interrupted(
        store.query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs {where} ORDER BY started",
                    [run_ids] if run_ids else None))


def _check_run_ids(run_ids: list[str], rows: list[dict[str, Any]],
                   run_table: list[dict[str, Any]]) -> None:
    known = {r["run_id"] for r in rows} | {r["run_id"] for r in run_table}
    unknown = [r for r in run_ids if r not in known]
    if unknown:
        raise UsageError(f"no results recorded for run {', '.join(unknown)} "
                         "(see 'hwaccel history')")


def _number(value: Any) -> float | None:
    """Return a JSON-safe float: ``None`` for missing, NaN or infinite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
