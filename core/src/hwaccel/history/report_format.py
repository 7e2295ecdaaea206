"""Formatting shared by the report's Markdown, HTML and charts: numbers with their units,
shortened text, matrix entries, and the titles and names of the generation, precision and
sweep sections (:mod:`hwaccel.history.report_render`, :mod:`hwaccel.history.report_charts`).
"""

from __future__ import annotations

from typing import Any

STATUS_TEXT = {"pass": "pass", "fail": "fail", "partial": "partial",
               "not-tested": "not tested"}

_REASON_CHARS = 100


def fmt_ms(value: float | None) -> str:
    """Format milliseconds with a precision that suits their size; ``-`` when missing."""
    if value is None:
        return "-"
    digits = 3 if value < 1 else 2 if value < 100 else 1
    return f"{value:,.{digits}f}"


def fmt_latency(value: float | None, latency_of: str | None) -> str:
    """Milliseconds, marked as a simulator's when ``latency_of`` says they are one's."""
    from hwaccel.hardware.simulators import LABEL

    return fmt_ms(value) + (LABEL if latency_of and value is not None else "")


def fmt_num(value: float | None, digits: int = 0) -> str:
    """Format a number with thousands separators; ``-`` when missing."""
    return "-" if value is None else f"{value:,.{digits}f}"


def fmt_speedup(value: float | None) -> str:
    """Format a speed-up factor (``2.50x``); ``-`` when missing."""
    return "-" if value is None else f"{value:.2f}x"


def fmt_pct(value: float | None) -> str:
    """Format a signed change in percent; ``-`` when missing."""
    return "-" if value is None else f"{value:+.1f} %"


def fmt_share(value: float | None) -> str:
    """Format a share between 0 and 1 in percent (``97.5 %``); ``-`` when missing."""
    return "-" if value is None else f"{value * 100:.1f} %"


def fmt_diff(value: float | None) -> str:
    """Format an output difference in scientific notation (``1.4e-07``); ``-`` when
    missing."""
    return "-" if value is None else f"{value:.1e}"


def fmt_cosine(value: float | None) -> str:
    """Format a cosine similarity with the digits that tell 0.99999 from 0.999999."""
    return "-" if value is None else f"{value:.6f}"


#: each sweep table and chart: (axis, metric) -> title, x title, y title
SWEEP_KINDS = {
    ("batch_size", "throughput"): ("Throughput against batch size", "batch size", "items/s"),
    ("batch_size", "tokens_per_s"): ("Generation throughput against batch size", "batch size",
                                     "new tokens/s"),
    ("seq_len", "p50_ms"): ("p50 latency against sequence length",
                            "sequence length (tokens)", "p50 latency (ms)"),
    ("seq_len", "ttft_ms"): ("Time to first token against prompt length",
                             "prompt length (tokens)", "time to first token (ms)"),
}


def sweep_groups(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweeps by kind (:data:`SWEEP_KINDS` order): ``kind`` (``axis-metric``), ``title``,
    ``x_title``, ``y_title``, ``xs`` (every x of the kind, increasing), ``sweeps``, and
    ``names`` (one per sweep, its settings added where names would clash)."""
    out = []
    for (axis, metric), (title, x_title, y_title) in SWEEP_KINDS.items():
        members = [s for s in data["sweeps"] if (s["axis"], s["metric"]) == (axis, metric)]
        if members:
            out.append({"kind": f"sweep-{axis}-{metric}", "metric": metric, "title": title,
                        "x_title": x_title,
                        "y_title": y_title, "sweeps": members, "names": _sweep_names(members),
                        "xs": sorted({p["x"] for s in members for p in s["points"]})})
    return out


def sweep_value(sweep: dict[str, Any], x: Any) -> float | None:
    """The sweep's y at ``x`` (``None`` where it has no point there)."""
    return next((p["y"] for p in sweep["points"] if p["x"] == x), None)


def fixed_settings(sweep: dict[str, Any]) -> str:
    """The settings a sweep keeps fixed, as text (``seq 32, 16 new tokens``)."""
    parts = [f"batch {sweep['batch_size']}" if sweep["axis"] == "seq_len" else
             f"seq {sweep['seq_len'] if sweep['seq_len'] is not None else '-'}"]
    if sweep["new_tokens"]:
        parts.append(f"{sweep['new_tokens']} new tokens")
    return ", ".join(parts)


def _sweep_names(sweeps: list[dict[str, Any]]) -> list[str]:
    """Name each sweep by model, backend, device and precision; add the fixed settings, then
    the run, where names clash."""
    from hwaccel.hardware.simulators import LABEL

    names = [f"{s['model']} · {s['backend']} ({s['device']}) {s['precision_label']}"
             + (LABEL if s["latency_of"] else "") for s in sweeps]
    names = [n if names.count(n) == 1 else f"{n} {fixed_settings(s)}"
             for n, s in zip(names, sweeps, strict=True)]
    return [n if names.count(n) == 1 else f"{n} run {s['run_id'][:8]}"
            for n, s in zip(names, sweeps, strict=True)]


def shorten(text: str | None, limit: int = _REASON_CHARS) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def matrix_text(entry: dict[str, Any] | None) -> str:
    """Return a matrix entry as short text: ``pass 2/2``, ``fail 0/1``, ``not tested``."""
    if entry is None:
        return "-"
    tested = entry["passed"] + entry["failed"]
    if entry["status"] == "not-tested":
        return "not tested"
    return f"{STATUS_TEXT[entry['status']]} {entry['passed']}/{tested}"


def untested_notes(data: dict[str, Any]) -> dict[str, int]:
    """Number each distinct reason of a not-tested matrix entry, in order of appearance.

    An absent backend gives the same reason in every row; the matrix shows its number and
    the reason is printed once under the table.
    """
    notes: dict[str, int] = {}
    for row in data["matrix"]:
        for entry in row["entries"].values():
            if entry and entry["status"] == "not-tested":
                for reason in entry["reasons"]:
                    notes.setdefault(reason, len(notes) + 1)
    return notes


def precision_title(group: dict[str, Any]) -> str:
    """One line naming a precision group: model, device and the settings it was measured
    at."""
    length = (f"prompt {group['seq_len']}, {group['new_tokens']} new tokens"
              if group["new_tokens"] else f"seq {group['seq_len']}")
    return (f"{group['model']} on {group['backend']} ({group['device']}), batch "
            f"{group['batch_size']}, {length}")


def reference_text(group: dict[str, Any]) -> str:
    """What the group's speed-ups are against: the CPU fp32 measurement and its p50."""
    ref = group["reference"]
    if ref is None:
        return "No CPU fp32 measurement at these settings: no speed-up."
    return (f"Speed-ups against {ref['backend']} ({ref['device']}) {ref['precision']}: "
            f"p50 {fmt_ms(ref['p50_ms'])} ms (run {ref['run_id']}).")
