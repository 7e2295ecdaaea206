"""The compatibility report's data, computed from the rows of the DuckDB history.

``build_report`` reads ``hardware_results`` (and ``runs``) and returns one JSON-safe dict that
``hwaccel.history.report_render`` turns into Markdown, JSON and HTML. Nothing in it is typed in:
every status, latency, speed-up, memory figure and trend comes from recorded rows.

Every selected row becomes an *entry* (a dict of its figures, status and reason). Two views of
the entries:

- a *cell* is the latest entry of one (model, backend, device): the compatibility matrix,
  the failures, the per-model results and the memory read the cells, so a model's status on
  a device is what its latest row says;
- a *measurement* is the latest entry of one (model, backend, device, requested precision,
  precision that ran, batch size, sequence or prompt length, new tokens)
  (:mod:`hwaccel.history.report_measurements`): a second precision, batch size or length
  measured later does not hide the first. Every cell is also a measurement (the same dict).

The measurements feed ``fastest`` (the highest speed-up per model), ``generation`` (one
table per model of its generation rows: time to the first token, per-token latency,
tokens/s, token match, KV cache), ``precisions`` (a device measured at several precisions:
each with its own speed-up and output difference) and, with every entry of a run,
``sweeps`` (a run's rows at several batch sizes or lengths).
Speed-ups are against the latest fp32 measurement of a reference backend (the CPU) with the
same batch size, length and new tokens. A cell's status:

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
from hwaccel.history.report_measurements import (
    generation_tables,
    latest_measurements,
    precision_groups,
    precision_label,
    reference_measurements,
    settings_key,
    sweeps,
    timed,
)
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
    "test_summary", "run_id", "timestamp", "source", "node", "details", "new_tokens",
    "ttft_ms", "tpot_p50_ms", "tpot_p90_ms", "tokens_per_s", "token_match", "kv_cache",
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
    first, then alphabetical), ``cells``, ``measurements``, ``matrix``, ``failures`` (failed
    cells by whose failure they are, hwaccel's own first), ``fastest``, ``memory``,
    ``generation``, ``precisions``, ``sweeps``, ``trends``, ``runs`` (see the module doc).
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
    entries = [_entry(row) for row in rows]
    cells = latest_cells(entries, reference)
    measured = latest_measurements(entries)
    add_speedups(measured, reference)
    measurements = in_report_order(measured, reference)
    backends = backend_order((c["backend"] for c in cells), reference)
    return {
        "generated": _iso(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)),
        "database": str(store.path),
        "run_ids": selected,
        "summary": summarize(cells),
        "backends": backends,
        "cells": cells,
        "measurements": measurements,
        "matrix": build_matrix(cells, backends),
        "failures": failures_by_category(cells),
        "fastest": fastest(cells, measurements),
        "memory": peak_memory(cells, backends),
        "generation": generation_tables(measurements),
        "precisions": precision_groups(measurements,
                                       reference_measurements(measured, reference)),
        "sweeps": sweeps(in_report_order(entries, reference)),
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


def latest_cells(entries: list[dict[str, Any]],
                 reference: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Return one cell per (model, backend, device): the latest of ``entries`` for it.

    ``entries`` must be in time order (oldest first); cells come in :func:`in_report_order`.
    """
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        latest[(entry["model"], entry["backend"], entry["device"])] = entry
    return in_report_order(list(latest.values()), reference)


def in_report_order(entries: list[dict[str, Any]],
                    reference: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Return ``entries`` sorted by pipeline, model, backend (in :func:`backend_order` with
    ``reference``), device, then batch size, length, new tokens and precision; entries equal
    in all of those keep their order (oldest first)."""
    order = {b: i for i, b in enumerate(backend_order((e["backend"] for e in entries),
                                                      reference))}
    return sorted(entries, key=lambda e: (
        e["pipeline"] or "", e["model"] or "", order.get(e["backend"], len(order)),
        e["device"] or "", e["batch_size"] or 0, e["seq_len"] or 0, e["new_tokens"] or 0,
        precision_label(e)))


def add_speedups(measurements: list[dict[str, Any]],
                 reference: Sequence[str] | None = None) -> None:
    """Set ``speedup_vs_cpu`` on every measurement (or cell; oldest first): the reference p50
    divided by its p50, so each precision of a device gets its own ratio.

    The reference is the latest passing fp32 measurement of a ``reference`` backend (by
    default :func:`reference_backends`: the CPU) of the same model with the same batch size,
    length and new tokens (:func:`~hwaccel.history.report_measurements.reference_measurements`);
    one without a passing p50 measured on its device, or without such a reference, gets
    ``None``.
    """
    first = reference_backends() if reference is None else tuple(reference)
    references = reference_measurements(measurements, first)
    for entry in measurements:
        found = references.get(settings_key(entry))
        entry["speedup_vs_cpu"] = (found["p50_ms"] / entry["p50_ms"]
                                   if found and timed(entry) else None)


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


def fastest(cells: list[dict[str, Any]],
            measurements: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Return, per model, its fastest passing result: the measurement with the highest
    speed-up against the CPU fp32 reference (each compared at its own settings, so every
    precision, batch size and length counts, like with like); for a model none of whose
    measurements has a speed-up, its passing cell with the lowest p50. Models with none are
    left out; a simulator's latency is not a device's, so it is never the fastest."""
    best: dict[str, dict[str, Any]] = {}
    for entry in measurements:
        if entry["speedup_vs_cpu"] is not None and (
                entry["model"] not in best
                or entry["speedup_vs_cpu"] > best[entry["model"]]["speedup_vs_cpu"]):
            best[entry["model"]] = entry
    quickest: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell["model"] not in best and timed(cell) and (
                cell["model"] not in quickest
                or cell["p50_ms"] < quickest[cell["model"]]["p50_ms"]):
            quickest[cell["model"]] = cell
    keys = ("model", "pipeline", "backend", "device", "p50_ms", "speedup_vs_cpu", "precision",
            "requested_precision", "batch_size", "seq_len", "new_tokens")
    return [{k: entry[k] for k in keys} | {"precision_label": precision_label(entry)}
            for entry in sorted([*best.values(), *quickest.values()],
                                key=lambda c: (c["pipeline"] or "", c["model"]))]


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
    (model, backend, device) at one batch size, sequence length, new tokens (0: one forward
    call) and precision, so that only like is compared with like; ``change_pct`` is the last
    p50 against the first, in percent (``None`` for a single point).
    """
    wanted = {(c["model"], c["backend"], c["device"]) for c in cells}
    series: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in history:
        if (row["model_id"], row["hardware"], row["device"]) in wanted:
            key = (row["model_id"], row["hardware"], row["device"], row["batch_size"],
                   row["seq_len"], row["new_tokens"] or 0, row["precision"],
                   simulated_latency(row["details"]))
            series[key].append({"run_id": row["run_id"], "timestamp": _iso(row["timestamp"]),
                                "p50_ms": _number(row["p50_ms"])})
    out = []
    for (model, backend, device, batch, seq_len, new_tokens, precision, latency_of), points in \
            series.items():
        first, last = points[0]["p50_ms"], points[-1]["p50_ms"]
        change = (last - first) / first * 100.0 if len(points) > 1 and first else None
        out.append({"model": model, "backend": backend, "device": device, "batch_size": batch,
                    "seq_len": seq_len, "new_tokens": new_tokens, "precision": precision,
                    "points": points,
                    "change_pct": change, "latency_of": latency_of})
    order = {b: i for i, b in enumerate(backend_order(t["backend"] for t in out))}
    out.sort(key=lambda t: (t["model"] or "", order.get(t["backend"], 0), t["device"] or "",
                            t["batch_size"] or 0, t["seq_len"] or 0, t["new_tokens"],
                            t["precision"] or ""))
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


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    """The report's view of one ``hardware_results`` row (a cell or measurement when it is
    the latest of its kind)."""
    status, reason = cell_status(row)
    details = _details(row["details"])
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
        "latency_of": simulated_latency(details),
        # what was asked for, as the backend recorded it when it ran something else
        "requested_precision": details.get("requested_precision") or row["precision"],
        "cosine_similarity": _number(details.get("cosine_similarity")),
        "new_tokens": row["new_tokens"], "ttft_ms": _number(row["ttft_ms"]),
        "tpot_p50_ms": _number(row["tpot_p50_ms"]), "tpot_p90_ms": _number(row["tpot_p90_ms"]),
        "tokens_per_s": _number(row["tokens_per_s"]), "token_match": _number(row["token_match"]),
        "kv_cache": row["kv_cache"],
    }


def _details(text: str | None) -> dict[str, Any]:
    """The row's ``details`` JSON as a dict (empty when missing or not an object)."""
    try:
        details = json.loads(text) if text else {}
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


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
