"""Render a report (``hwaccel.history.report.build_report``) as Markdown, JSON or one HTML file.

The HTML file is self-contained: inline CSS and inline SVG charts, no script and no external
URL, so it opens offline. The charts' geometry is computed in
:mod:`hwaccel.history.report_charts`; the Jinja2 template only writes it out, with
autoescaping on, so every model name, error and reason reaches the page as text. Markdown
escapes the characters that would break a table or start inline HTML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2

from hwaccel.errors import HwaccelError, UsageError
from hwaccel.history.report_charts import (
    latency_chart,
    memory_chart,
    sweep_chart,
    tokens_charts,
    trend_chart,
)
from hwaccel.history.report_format import (
    STATUS_TEXT,
    fixed_settings,
    fmt_cosine,
    fmt_diff,
    fmt_latency,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_share,
    fmt_speedup,
    matrix_text,
    precision_title,
    reference_text,
    shorten,
    sweep_groups,
    sweep_value,
    untested_notes,
)
from hwaccel.history.report_measurements import precision_label

FORMATS = {"md": "hwaccel-report.md", "json": "hwaccel-report.json",
           "html": "hwaccel-report.html"}
SEVERITIES = ("critical", "error", "warning", "info")

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|<>`"})


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
                      "speed-up vs CPU", "precision", "batch", "seq", "new tokens"],
                     [[f["model"], f["pipeline"], f["backend"], f["device"],
                       fmt_ms(f["p50_ms"]), fmt_speedup(f["speedup_vs_cpu"]),
                       f["precision_label"], f["batch_size"], f["seq_len"], f["new_tokens"]]
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


# --- HTML --------------------------------------------------------------------------------

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
