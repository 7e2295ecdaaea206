"""Render a report (``hwaccel.history.report.build_report``) as Markdown, JSON or one HTML file.

The HTML file is self-contained: inline CSS and inline SVG charts, no script and no external
URL, so it opens offline. The charts' geometry is computed here; the Jinja2 template only
writes it out, with autoescaping on, so every model name, error and reason reaches the page as
text. Markdown escapes the characters that would break a table or start inline HTML.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from hwaccel.errors import HwaccelError, UsageError
from hwaccel.history.report_measurements import precision_label

FORMATS = {"md": "hwaccel-report.md", "json": "hwaccel-report.json",
           "html": "hwaccel-report.html"}
# Observable's categorical palette: distinct hues that read on white.
PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2",
           "#97bbf5", "#9c6b4e", "#9498a0")
STATUS_TEXT = {"pass": "pass", "fail": "fail", "partial": "partial",
               "not-tested": "not tested"}
SEVERITIES = ("critical", "error", "warning", "info")

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|<>`"})
_REASON_CHARS = 100
_LABEL_CHARS = 24


# --- formatting, shared by Markdown and HTML ---------------------------------------------

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
    names = [f"{s['model']} · {s['backend']} ({s['device']}) {s['precision_label']}"
             for s in sweeps]
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


# --- Markdown ----------------------------------------------------------------------------

def render_markdown(data: dict[str, Any]) -> str:
    """Return the report as Markdown: matrix, per-model results, fastest, memory,
    generation, precisions, sweeps, trends."""
    lines = ["# hwaccel compatibility report", "", *_md_header(data), ""]
    for title, body in (("Compatibility matrix (pipeline x backend)", _md_matrix(data)),
                        ("Failures by whose they are", _md_failures(data)),
                        ("Results per model", _md_cells(data)),
                        ("Fastest backend per model", _md_fastest(data)),
                        ("Peak memory per model and backend", _md_memory(data)),
                        ("Generation", _md_generation(data)),
                        ("Precisions", _md_precisions(data)),
                        ("Sweeps", _md_sweeps(data)),
                        ("Latency trends", _md_trends(data)),
                        ("Runs", _md_runs(data)),
                        ("Compatibility errors", _md_compatibility(data))):
        if body is not None:
            lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)


def _md(value: Any) -> str:
    """Escape one table cell: no line breaks, no table pipes, no inline HTML or code."""
    text = "-" if value is None else " ".join(str(value).split())
    return text.translate(_MD_SPECIAL)


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return out


def _md_header(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    runs = ", ".join(data["run_ids"]) if data["run_ids"] else "all runs"
    return [f"Generated {data['generated']} UTC from `{_md(data['database'])}` ({_md(runs)}).",
            "",
            f"**{s['cells']}** cells ({s['models']} models x {s['backends']} backends): "
            f"**{s['passed']}** pass, **{s['failed']}** fail, **{s['not_tested']}** not tested."]


def _md_matrix(data: dict[str, Any]) -> list[str]:
    if not data["matrix"]:
        return ["No results recorded."]
    notes = untested_notes(data)
    rows = []
    for row in data["matrix"]:
        entries = [row["entries"][b] for b in data["backends"]]
        rows.append([row["family"], row["pipeline"], ", ".join(row["models"]),
                     *(_md_entry(e, notes) for e in entries)])
    table = _md_table(["family", "pipeline", "models", *data["backends"]], rows)
    return table + [""] + [f"[{n}] {_md(reason)}  " for reason, n in notes.items()]


def _md_entry(entry: dict[str, Any] | None, notes: dict[str, int]) -> str:
    text = matrix_text(entry)
    if entry and entry["status"] == "not-tested":
        text += " " + "".join(f"[{notes[r]}]" for r in entry["reasons"])
    elif entry and entry["reasons"]:
        text += ": " + "; ".join(shorten(r) for r in entry["reasons"])
    return text


def _md_failures(data: dict[str, Any]) -> list[str]:
    if not data["failures"]:
        return ["No cell failed."]
    lines = [_md(", ".join(f"{g['category']} {g['count']}" for g in data["failures"])), ""]
    for group in data["failures"]:
        lines += [f"### {_md(group['category'])} ({group['count']})", "",
                  *_md_table(["model", "pipeline", "backend", "device", "reason"],
                             [[c["model"], c["pipeline"], c["backend"], c["device"],
                               shorten(c["reason"], 240)] for c in group["cells"]]), ""]
    return lines[:-1]


def _md_cells(data: dict[str, Any]) -> list[str]:
    if not data["cells"]:
        return ["No results recorded."]
    return _md_table(
        ["model", "pipeline", "backend", "device", "status", "p50 ms", "p90 ms",
         "speed-up vs CPU", "memory MiB", "device MiB", "precision", "batch", "seq",
         "new tokens", "reason"],
        [[c["model"], c["pipeline"], c["backend"], c["device"], STATUS_TEXT[c["status"]],
          fmt_latency(c["p50_ms"], c["latency_of"]), fmt_latency(c["p90_ms"], c["latency_of"]),
          fmt_speedup(c["speedup_vs_cpu"]),
          fmt_num(c["memory_mib"]), fmt_num(c["device_memory_mib"]), precision_label(c),
          c["batch_size"], c["seq_len"], c["new_tokens"], c["reason"] and shorten(c["reason"])]
         for c in data["cells"]])


def _md_fastest(data: dict[str, Any]) -> list[str]:
    if not data["fastest"]:
        return ["No model passed on any backend."]
    return _md_table(["model", "pipeline", "fastest backend", "device", "p50 ms",
                      "speed-up vs CPU"],
                     [[f["model"], f["pipeline"], f["backend"], f["device"],
                       fmt_ms(f["p50_ms"]), fmt_speedup(f["speedup_vs_cpu"])]
                      for f in data["fastest"]])


def _md_memory(data: dict[str, Any]) -> list[str]:
    if not data["memory"]:
        return ["No passing cell recorded its memory."]
    return _md_table(["model", "backend", "device", "peak memory MiB", "device memory MiB"],
                     [[m["model"], m["backend"], m["device"], fmt_num(m["memory_mib"]),
                       fmt_num(m["device_memory_mib"])] for m in data["memory"]])


def _md_generation(data: dict[str, Any]) -> list[str]:
    lines = ["No generation benchmark passed (`--new-tokens`)."] if not data["generation"] \
        else []
    for table in data["generation"]:
        lines += [f"### {_md(table['model'])}", "", *_md_table(
            ["backend", "device", "precision", "batch", "prompt", "new tokens", "TTFT ms",
             "per-token p50 ms", "per-token p90 ms", "tokens/s", "token match", "KV cache",
             "call p50 ms", "speed-up vs CPU"],
            [[r["backend"], r["device"], r["precision_label"], r["batch_size"], r["seq_len"],
              r["new_tokens"], fmt_latency(r["ttft_ms"], r["latency_of"]),
              fmt_latency(r["tpot_p50_ms"], r["latency_of"]),
              fmt_latency(r["tpot_p90_ms"], r["latency_of"]), fmt_num(r["tokens_per_s"], 1),
              fmt_share(r["token_match"]), r["kv_cache"],
              fmt_latency(r["p50_ms"], r["latency_of"]), fmt_speedup(r["speedup_vs_cpu"])]
             for r in table["rows"]]), ""]
    return lines[:-1] if data["generation"] else lines


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


def _md_precisions(data: dict[str, Any]) -> list[str]:
    if not data["precisions"]:
        return ["No device was measured at more than one precision."]
    lines = []
    for group in data["precisions"]:
        lines += [f"### {_md(precision_title(group))}", "", _md(reference_text(group)), "",
                  *_md_table(["precision", "status", "p50 ms", "items/s", "tokens/s",
                              "speed-up vs CPU fp32", "max abs diff", "cosine",
                              "token match", "reason"],
                             [[r["precision_label"], STATUS_TEXT[r["status"]],
                               fmt_latency(r["p50_ms"], r["latency_of"]),
                               fmt_num(r["throughput"], 1), fmt_num(r["tokens_per_s"], 1),
                               fmt_speedup(r["speedup_vs_cpu"]), fmt_diff(r["max_abs_diff"]),
                               fmt_cosine(r["cosine_similarity"]), fmt_share(r["token_match"]),
                               r["reason"] and shorten(r["reason"])]
                              for r in group["rows"]]), ""]
    return lines[:-1]


def _md_sweeps(data: dict[str, Any]) -> list[str]:
    groups = sweep_groups(data)
    if not groups:
        return ["No run measured one model at several batch sizes or lengths."]
    lines = []
    for group in groups:
        fmt = fmt_ms if group["metric"].endswith("_ms") else (lambda v: fmt_num(v, 1))
        lines += [f"### {group['title']}", "", *_md_table(
            ["model", "backend", "device", "precision", "fixed", "run",
             *(f"{group['x_title'].split(' (')[0]} {x}" for x in group["xs"])],
            [[s["model"], s["backend"], s["device"], s["precision_label"], fixed_settings(s),
              s["run_id"], *(fmt(sweep_value(s, x)) for x in group["xs"])]
             for s in group["sweeps"]]), ""]
    return lines[:-1]


def _md_trends(data: dict[str, Any]) -> list[str]:
    series = [t for t in data["trends"] if len(t["points"]) > 1]
    if not series:
        return ["No model has more than one successful run yet."]
    return _md_table(["model", "backend", "device", "batch", "seq", "precision", "runs",
                      "first p50 ms", "last p50 ms", "change"],
                     [[t["model"], t["backend"], t["device"], t["batch_size"], t["seq_len"],
                       t["precision"], len(t["points"]),
                       fmt_latency(t["points"][0]["p50_ms"], t["latency_of"]),
                       fmt_latency(t["points"][-1]["p50_ms"], t["latency_of"]),
                       fmt_pct(t["change_pct"])]
                      for t in series])


def _md_runs(data: dict[str, Any]) -> list[str]:
    if not data["runs"]:
        return ["No runs recorded."]
    return _md_table(["run", "command", "started", "status", "rows", "pass", "fail",
                      "not tested", "backends"],
                     [[r["run_id"], r["command"], r["started"] or r["first_result"],
                       r["status"], r["rows"], r["passed"], r["failed"], r["not_tested"],
                       ", ".join(r["backends"])] for r in data["runs"]])


def _md_compatibility(data: dict[str, Any]) -> list[str] | None:
    compat = data.get("compatibility")
    if compat is None:
        return None
    summary = compat.get("summary") or {}
    counts = ", ".join(f"{summary.get(s, 0)} {s}" for s in SEVERITIES)
    errors = compat.get("errors") or []
    if not errors:
        return [f"No compatibility errors ({counts})."]
    return [counts + ".", "", *_md_table(
        ["severity", "component", "hardware", "error type", "message", "recommendations"],
        [[e.get("severity"), e.get("component"), e.get("hardware"), e.get("error_type"),
          e.get("message"), "; ".join(map(str, e.get("recommendations") or []))]
         for e in errors])]


# --- JSON --------------------------------------------------------------------------------

def render_json(data: dict[str, Any]) -> str:
    """Return the report as indented JSON (values that JSON lacks become strings)."""
    return json.dumps(data, indent=2, default=str) + "\n"


# --- HTML and its charts -----------------------------------------------------------------

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("hwaccel.history", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_ENV.filters.update(ms=fmt_ms, latency=fmt_latency, num=fmt_num, speedup=fmt_speedup, pct=fmt_pct,
                    share=fmt_share, diff=fmt_diff, cosine=fmt_cosine, shorten=shorten,
                    matrix_text=matrix_text, precision=precision_label, fixed=fixed_settings)


def render_html(data: dict[str, Any]) -> str:
    """Return the report as one self-contained HTML page with inline SVG charts."""
    charts = {"latency": latency_chart(data), "memory": memory_chart(data),
              "trend": trend_chart(data), "tokens": tokens_charts(data)}
    sweeps = sweep_groups(data)
    for group in sweeps:
        group["chart"] = sweep_chart(group)
    return _ENV.get_template("report.html.j2").render(
        data=data, charts=charts, compatibility=data.get("compatibility"), sweeps=sweeps,
        sweep_value=sweep_value, precision_title=precision_title,
        reference_text=reference_text,
        notes=untested_notes(data),
        status_text=STATUS_TEXT, severities=SEVERITIES,
        trend_series=[t for t in data["trends"] if len(t["points"]) > 1])


@dataclass(frozen=True)
class Axis:
    """A vertical value axis from ``lo`` (at pixel ``bottom``) to ``hi`` (at pixel ``top``)."""

    lo: float
    hi: float
    log: bool
    top: float
    bottom: float

    def y(self, value: float) -> float:
        """Return the pixel row of ``value``."""
        f = math.log10 if self.log else float
        fraction = (f(value) - f(self.lo)) / (f(self.hi) - f(self.lo))
        return round(self.bottom - fraction * (self.bottom - self.top), 1)

    def ticks(self) -> list[float]:
        """Return the values to mark: decades (and 2, 5 between when few) or even steps."""
        if self.log:
            first, last = round(math.log10(self.lo)), round(math.log10(self.hi))
            steps = (1, 2, 5) if last - first <= 2 else (1,)
            values = [m * 10.0 ** e for e in range(first, last + 1) for m in steps]
            return [v for v in values if self.lo <= v <= self.hi * 1.0001]
        step = _nice_step(self.hi)
        return [i * step for i in range(round(self.hi / step) + 1)]


def log_axis(values: Sequence[float], top: float, bottom: float) -> Axis:
    """Return a log axis spanning whole decades, its floor strictly below every value."""
    low, high = min(values), max(values)
    lo = 10.0 ** math.floor(math.log10(low))
    if lo >= low:
        lo /= 10
    hi = 10.0 ** math.ceil(math.log10(high))
    return Axis(lo, hi if hi > lo else lo * 10, True, top, bottom)


def linear_axis(values: Sequence[float], top: float, bottom: float) -> Axis:
    """Return a linear axis from zero to a round value at or above the largest value."""
    step = _nice_step(max(values))
    return Axis(0.0, step * math.ceil(max(values) / step), False, top, bottom)


def _nice_step(high: float) -> float:
    """Return a 1, 2 or 5 times a power of ten step that cuts ``[0, high]`` in about 5."""
    raw = high / 5
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _tick_label(value: float) -> str:
    return f"{value:g}"


# Layout of every chart, in pixels.
_LEFT, _RIGHT, _TOP, _PLOT_H = 72, 24, 36, 260
# x labels turn by -35 degrees; 11 px text is about 6.2 px a character
_CHAR_W, _LABEL_COS, _LABEL_SIN = 6.2, math.cos(math.radians(35)), math.sin(math.radians(35))
_BAR_W, _BAR_GAP, _GROUP_GAP, _LEGEND_ROW = 14, 2, 22, 20


def latency_chart(data: dict[str, Any]) -> dict[str, Any] | None:
    """Return the p50 latency chart: bars per backend, per model, grouped by pipeline."""
    cells = [c for c in data["cells"] if c["status"] == "pass" and c["p50_ms"]]
    return _bar_chart(
        "latency", "p50 latency per model and backend (log scale)", "p50 latency (ms)",
        cells, data["backends"], _backend, "p50_ms", log_axis,
        lambda c: f"{c['model']} on {c['backend']} ({c['device']}): p50 "
                  f"{fmt_ms(c['p50_ms'])} ms"
                  + (f" in {c['latency_of']}" if c["latency_of"] else
                     f", speed-up vs CPU {fmt_speedup(c['speedup_vs_cpu'])}"))


def memory_chart(data: dict[str, Any]) -> dict[str, Any] | None:
    """Return the peak memory chart: bars per backend, per model, grouped by pipeline."""
    entries = [m for m in data["memory"] if m["memory_mib"]]
    return _bar_chart(
        "memory", "Peak resident memory per model and backend", "peak memory (MiB)",
        entries, data["backends"], _backend, "memory_mib", linear_axis,
        lambda m: f"{m['model']} on {m['backend']} ({m['device']}): peak "
                  f"{fmt_num(m['memory_mib'])} MiB"
                  + (f", device {fmt_num(m['device_memory_mib'])} MiB"
                     if m["device_memory_mib"] is not None else ""))


def tokens_charts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one generation chart per device (backend and device): new tokens per second,
    one bar per model and precision (and settings, where the device ran several)."""
    by_device: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for table in data["generation"]:
        for row in table["rows"]:
            if row["tokens_per_s"]:
                by_device.setdefault((row["backend"], row["device"]), []).append(
                    {**row, "model": table["model"], "pipeline": table["pipeline"]})
    charts = []
    for (backend, device), items in by_device.items():
        several = len({(i["batch_size"], i["seq_len"], i["new_tokens"]) for i in items}) > 1
        for item in items:
            item["series"] = item["precision_label"] + (
                f" b{item['batch_size']} prompt {item['seq_len']} +{item['new_tokens']}"
                if several else "")
        series = list(dict.fromkeys(i["series"] for i in items))
        charts.append(_bar_chart(
            "tokens", f"New tokens per second on {backend} ({device})", "new tokens/s",
            items, series, lambda i: i["series"], "tokens_per_s", linear_axis,
            lambda i: f"{i['model']} {i['series']}: {fmt_num(i['tokens_per_s'], 1)} tokens/s,"
                      f" TTFT {fmt_latency(i['ttft_ms'], i['latency_of'])} ms, per token "
                      f"{fmt_latency(i['tpot_p50_ms'], i['latency_of'])} ms"))
    return charts


def _backend(item: dict[str, Any]) -> str:
    return item["backend"]


def _bar_chart(kind: str, title: str, y_title: str, items: list[dict[str, Any]],
               series: list[str], series_of: Callable[[dict[str, Any]], str], field: str,
               make_axis: Callable[[Sequence[float], float, float], Axis],
               describe: Callable[[dict[str, Any]], str]) -> dict[str, Any] | None:
    """Lay out grouped bars: one group per model (pipelines side by side), one bar per item,
    coloured by its series (``series_of``; ``series`` gives the colours' order)."""
    if not items:
        return None
    bottom = _TOP + _PLOT_H
    axis = make_axis([i[field] for i in items], _TOP, bottom)
    colour = {b: PALETTE[n % len(PALETTE)] for n, b in enumerate(series)}
    chart = _frame(kind, title, y_title, "model, grouped by pipeline", axis)
    groups = _groups(items)
    first_model, first_members = groups[0][1][0]
    # the first model's turned label reaches left of its group: keep it inside the chart
    reach = len(shorten(first_model, _LABEL_CHARS)) * _CHAR_W * _LABEL_COS
    x = max(_LEFT + _GROUP_GAP / 2,
            reach + 8 - (len(first_members) * (_BAR_W + _BAR_GAP) - _BAR_GAP) / 2)
    for pipeline, models in groups:
        text = pipeline or "unclassified"
        # a band is at least as wide as its label, so neighbouring labels never overlap
        bars = sum(len(m) * (_BAR_W + _BAR_GAP) - _BAR_GAP for _, m in models) + \
            (len(models) - 1) * _GROUP_GAP
        spare = max(0.0, len(text) * _CHAR_W - bars) / 2
        x += spare
        band_start = x - spare
        for model, members in models:
            start = x
            for item in members:
                y = min(axis.y(item[field]), bottom - 1)
                chart["bars"].append({"x": round(x, 1), "y": y, "w": _BAR_W,
                                      "h": round(bottom - y, 1),
                                      "fill": colour[series_of(item)],
                                      "title": describe(item)})
                x += _BAR_W + _BAR_GAP
            chart["x_labels"].append(_x_label((start + x - _BAR_GAP) / 2, bottom, model))
            x += _GROUP_GAP - _BAR_GAP
        x += spare
        chart["bands"].append({"x": round((band_start + x - _GROUP_GAP) / 2, 1),
                               "sep": round(x - _GROUP_GAP / 2, 1), "label": text})
    chart["bands"][-1]["sep"] = None
    return _finish(chart, x - _GROUP_GAP / 2, [(b, colour[b]) for b in series
                                               if any(series_of(i) == b for i in items)])


def _groups(items: list[dict[str, Any]]) -> list[tuple[Any, list[tuple[str, list]]]]:
    """Group items by pipeline, then model, keeping their order."""
    out: dict[Any, dict[str, list[dict[str, Any]]]] = {}
    for item in items:
        out.setdefault(item["pipeline"], {}).setdefault(item["model"], []).append(item)
    return [(pipeline, list(models.items())) for pipeline, models in out.items()]


def trend_chart(data: dict[str, Any]) -> dict[str, Any] | None:
    """Return the p50 trend chart (lines over runs), or ``None`` when no series has 2 runs."""
    series = [t for t in data["trends"] if len(t["points"]) > 1]
    if not series:
        return None
    first_seen: dict[str, str] = {}
    for point in sorted((p for t in series for p in t["points"]), key=lambda p: p["timestamp"]):
        first_seen.setdefault(point["run_id"], point["timestamp"])
    lines = [{"name": name, "title": f"{name}: {fmt_pct(trend['change_pct'])} first to last",
              "points": [(p["run_id"], p["p50_ms"],
                          f"{name}, run {p['run_id']} at {p['timestamp']}: "
                          f"p50 {fmt_latency(p['p50_ms'], trend['latency_of'])} ms")
                         for p in trend["points"]]}
             for trend, name in zip(series, _series_names(series), strict=True)]
    return _line_chart("trend", "p50 latency over runs (log scale)", "p50 latency (ms)",
                       "run, in time order", [(run, run[:8], run) for run in first_seen],
                       lines, log_axis)


def sweep_chart(group: dict[str, Any]) -> dict[str, Any]:
    """Return the line chart of one kind of sweep (:func:`sweep_groups`): each sweep's y
    against its batch size or length, one column per value any sweep of the kind has."""
    unit = group["y_title"]
    lines = [{"name": name, "title": f"{name}, {fixed_settings(s)}, run {s['run_id']}",
              "points": [(p["x"], p["y"], f"{name} at {group['x_title']} {p['x']}: "
                                          f"{fmt_num(p['y'], 2)} {unit}")
                         for p in s["points"]]}
             for s, name in zip(group["sweeps"], group["names"], strict=True)]
    return _line_chart(group["kind"], group["title"], unit, group["x_title"],
                       [(x, str(x), f"{group['x_title']} {x}") for x in group["xs"]], lines,
                       linear_axis)


def _line_chart(kind: str, title: str, y_title: str, x_title: str,
                columns: list[tuple[Any, str, str]], series: list[dict[str, Any]],
                make_axis: Callable[[Sequence[float], float, float], Axis]) -> dict[str, Any]:
    """Lay out lines over evenly spaced columns: ``columns`` are (key, label, title) in
    order, each series has a ``name``, a ``title`` and ``points`` (column key, value,
    title)."""
    bottom = _TOP + _PLOT_H
    axis = make_axis([value for s in series for _, value, _ in s["points"]], _TOP, bottom)
    step = max(64, 280 / max(len(columns) - 1, 1))  # spread a few columns over 280 px
    column = {key: round(_LEFT + 32 + i * step, 1) for i, (key, _, _) in enumerate(columns)}
    chart = _frame(kind, title, y_title, x_title, axis)
    for key, label, full in columns:
        chart["x_labels"].append(_x_label(column[key], bottom, label, full=full))
    legend = []
    for n, line in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        marks = [(column[key], axis.y(value), text) for key, value, text in line["points"]]
        chart["lines"].append({"d": " ".join(f"{'M' if i == 0 else 'L'}{x},{y}"
                                             for i, (x, y, _) in enumerate(marks)),
                               "stroke": colour, "title": line["title"]})
        chart["points"] += [{"cx": x, "cy": y, "fill": colour, "title": text}
                            for x, y, text in marks]
        legend.append((line["name"], colour))
    return _finish(chart, _LEFT + 64 + (len(columns) - 1) * step, legend)


def _series_names(series: list[dict[str, Any]]) -> list[str]:
    """Name each series by model, backend and device; add its settings where names clash."""
    plain = [f"{t['model']} · {t['backend']} ({t['device']})" for t in series]
    return [name if plain.count(name) == 1 else
            f"{name} b{t['batch_size']} s{t['seq_len']} {t['precision']}"
            for name, t in zip(plain, series, strict=True)]


def _frame(kind: str, title: str, y_title: str, x_title: str, axis: Axis) -> dict[str, Any]:
    """Return an empty chart with its value axis ticks."""
    return {"kind": kind, "title": title, "y_title": y_title, "x_title": x_title,
            "left": _LEFT, "top": _TOP, "bottom": _TOP + _PLOT_H,
            "y_ticks": [{"y": axis.y(v), "label": _tick_label(v)} for v in axis.ticks()],
            "bars": [], "lines": [], "points": [], "x_labels": [], "bands": [], "legend": []}


def _x_label(x: float, bottom: float, text: str, full: str | None = None) -> dict[str, Any]:
    return {"x": round(x, 1), "y": bottom + 14, "label": shorten(text, _LABEL_CHARS),
            "title": full or text}


def _finish(chart: dict[str, Any], plot_right: float,
            legend: list[tuple[str, str]]) -> dict[str, Any]:
    """Set the chart's width and height and lay the legend out in rows under the labels."""
    width = max(plot_right + _RIGHT, 420)
    longest = max((len(label["label"]) for label in chart["x_labels"]), default=0)
    chart["x_title_y"] = round(chart["bottom"] + 30 + longest * _CHAR_W * _LABEL_SIN)
    x, y = _LEFT, chart["x_title_y"] + 14
    for text, colour in legend:
        size = 22 + 7 * len(shorten(text, 60))
        if x + size > width - _RIGHT and x > _LEFT:
            x, y = _LEFT, y + _LEGEND_ROW
        chart["legend"].append({"x": x, "y": y, "fill": colour, "label": shorten(text, 60)})
        x += size + 14
    chart.update(width=round(width), height=round(y + _LEGEND_ROW), right=round(plot_right))
    return chart


# --- files -------------------------------------------------------------------------------

def write_reports(data: dict[str, Any], out_dir: Path | str,
                  formats: Sequence[str] = ("md", "json", "html")) -> list[Path]:
    """Write ``hwaccel-report.{md,json,html}`` (those in ``formats``) and return their paths.

    :raises UsageError: for a format other than md, json or html.
    :raises HwaccelError: when the folder cannot be created or a file cannot be written.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"unknown report format {', '.join(unknown)} "
                         f"(choose from {', '.join(FORMATS)})")
    renderers = {"md": render_markdown, "json": render_json, "html": render_html}
    folder = Path(out_dir).expanduser()
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in dict.fromkeys(formats):
            path = folder / FORMATS[name]
            path.write_text(renderers[name](data), encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise HwaccelError(f"cannot write the report to {folder}: "
                           f"{exc.strerror or exc}") from None
    return written
