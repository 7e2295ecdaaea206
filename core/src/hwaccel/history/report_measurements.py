"""The report's sections that keep every setting a run measured: generation, precision, sweeps.

They read *entries*: one dict per ``hardware_results`` row (``hwaccel.history.report._entry``),
oldest first. A *measurement* is the latest entry of one (model, backend, device, requested
precision, precision that ran, batch size, sequence or prompt length, new tokens): two rows
that differ in any of those measured different things, and neither hides the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

#: the precision of the reference every speed-up is against (PyTorch on the CPU, fp32)
REFERENCE_PRECISION = "fp32"

# The y value of a sweep, by axis and kind of row: throughput against batch size, latency
# against length; a generation row's own figures (tokens/s, time to the first token).
_SWEEP_METRICS = {("batch_size", False): "throughput", ("batch_size", True): "tokens_per_s",
                  ("seq_len", False): "p50_ms", ("seq_len", True): "ttft_ms"}
_FIXED = {"batch_size": ("seq_len", "new_tokens"), "seq_len": ("batch_size", "new_tokens")}


def is_generation(entry: dict[str, Any]) -> bool:
    """Whether the entry timed greedy generation (``new_tokens`` > 0), not one forward call."""
    return (entry["new_tokens"] or 0) > 0


def timed(entry: dict[str, Any]) -> bool:
    """Whether the entry passed with a positive p50 measured on the device itself (not on a
    simulator), so that ratios with it are defined."""
    return (entry["status"] == "pass" and bool(entry["p50_ms"]) and entry["p50_ms"] > 0
            and not entry["latency_of"])


def precision_label(entry: dict[str, Any]) -> str:
    """The precision as a reader needs it: what ran, with what was asked when that differs
    (``native (bf16)``: the device's default was bf16; ``fp16, ran fp32``: a fallback)."""
    ran, asked = entry["precision"] or "-", entry["requested_precision"]
    if not asked or asked == ran:
        return ran
    from hwaccel.types import NATIVE_PRECISION

    return f"{asked} ({ran})" if asked == NATIVE_PRECISION else f"{asked}, ran {ran}"


def settings_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What a speed-up compares like with like on: model, batch, length, new tokens."""
    return entry["model"], entry["batch_size"], entry["seq_len"], entry["new_tokens"] or 0


def measurement_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """The settings that make two entries different measurements (see the module doc)."""
    return (entry["model"], entry["backend"], entry["device"], entry["requested_precision"],
            entry["precision"], entry["batch_size"], entry["seq_len"], entry["new_tokens"] or 0)


def latest_measurements(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the latest of ``entries`` (oldest first) for every :func:`measurement_key`,
    oldest first."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        key = measurement_key(entry)
        latest.pop(key, None)
        latest[key] = entry
    return list(latest.values())


def reference_measurements(measurements: Iterable[dict[str, Any]],
                           reference: Iterable[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Return, per :func:`settings_key`, the latest timed fp32 measurement of a ``reference``
    backend among ``measurements`` (oldest first): the figure every other measurement of
    those settings is compared with."""
    backends = set(reference)
    return {settings_key(entry): entry for entry in measurements
            if entry["backend"] in backends and timed(entry)
            and entry["precision"] in (None, REFERENCE_PRECISION)}


def generation_tables(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one table per model of its passing generation measurements (in the order of
    ``measurements``): ``model``, ``pipeline`` and ``rows``, each row the measurement with
    its ``precision_label``."""
    tables: dict[str, dict[str, Any]] = {}
    for entry in measurements:
        if is_generation(entry) and entry["status"] == "pass":
            table = tables.setdefault(entry["model"], {"model": entry["model"],
                                                       "pipeline": entry["pipeline"],
                                                       "rows": []})
            table["rows"].append(_row(entry))
    return list(tables.values())


def precision_groups(measurements: list[dict[str, Any]],
                     references: dict[tuple[Any, ...], dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the (model, backend, device, batch, length, new tokens) that were measured at
    several precisions, each with every one of them (a failure with its reason) and the
    CPU fp32 reference they are compared with (``None`` where there is none).

    Each row carries its own ``speedup_vs_cpu`` and the difference of its outputs from the
    reference: ``max_abs_diff``, ``cosine_similarity`` (embeddings), ``token_match``
    (generation).
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for entry in measurements:
        groups[(entry["backend"], entry["device"], *settings_key(entry))].append(entry)
    out = []
    for (backend, device, model, batch, seq_len, new_tokens), members in groups.items():
        if len({(m["requested_precision"], m["precision"]) for m in members}) < 2:
            continue
        if not any(m["status"] == "pass" for m in members):
            continue
        ref = references.get((model, batch, seq_len, new_tokens))
        out.append({
            "model": model, "pipeline": members[0]["pipeline"], "backend": backend,
            "device": device, "batch_size": batch, "seq_len": seq_len,
            "new_tokens": new_tokens,
            "reference": None if ref is None else {
                k: ref[k] for k in ("backend", "device", "precision", "p50_ms", "run_id")},
            "rows": [_row(m) for m in members]})
    return out


def sweeps(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the sweeps the runs hold among ``entries`` (rows of one measurement in time
    order): the passing rows of one run and one (model, backend,
    device, precision) at two or more batch sizes (throughput against batch size: items/s,
    tokens/s for generation) or lengths (latency against sequence or prompt length: p50,
    the time to the first token for generation), the other settings fixed.

    Each sweep has ``axis`` (``batch_size`` or ``seq_len``), ``metric`` (the entry field of
    its y values), the run, model, backend, device, precisions and fixed settings, and
    ``points`` (``x``, ``y``, a positive y) in increasing x; the latest row of a run wins a
    repeated point. Sweeps come by axis, then in the order of ``entries``.
    """
    by_run: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        if entry["status"] == "pass":
            by_run[(entry["run_id"], *measurement_key(entry))] = entry
    out = []
    for axis, fixed in _FIXED.items():
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for entry in by_run.values():
            if entry[axis] is None:
                continue
            groups[(entry["run_id"], entry["model"], entry["backend"], entry["device"],
                    entry["requested_precision"], entry["precision"],
                    *(_setting(entry, f) for f in fixed))].append(entry)
        for members in groups.values():
            generation = is_generation(members[0])
            metric = _SWEEP_METRICS[(axis, generation)]
            points = sorted(({"x": m[axis], "y": m[metric]} for m in members
                             if m[metric] is not None and m[metric] > 0),
                            key=lambda p: p["x"])
            if len(points) < 2:
                continue
            first = members[0]
            out.append({"axis": axis, "metric": metric, "generation": generation,
                        "run_id": first["run_id"], "model": first["model"],
                        "pipeline": first["pipeline"], "backend": first["backend"],
                        "device": first["device"], "precision": first["precision"],
                        "precision_label": precision_label(first),
                        **{f: _setting(first, f) for f in fixed},
                        "latency_of": first["latency_of"],
                        "points": points})
    return out


_ROW_KEYS = ("backend", "device", "status", "reason", "precision", "requested_precision",
             "batch_size", "seq_len", "new_tokens", "p50_ms", "p90_ms", "throughput",
             "ttft_ms", "tpot_p50_ms", "tpot_p90_ms", "tokens_per_s", "token_match",
             "kv_cache", "speedup_vs_cpu", "max_abs_diff", "cosine_similarity", "latency_of",
             "run_id")


def _setting(entry: dict[str, Any], name: str) -> Any:
    """A setting of the entry, ``new_tokens`` 0 where an older row left it empty."""
    return (entry[name] or 0) if name == "new_tokens" else entry[name]


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    return {**{k: entry[k] for k in _ROW_KEYS}, "precision_label": precision_label(entry)}
