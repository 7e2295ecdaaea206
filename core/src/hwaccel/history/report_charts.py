"""The geometry of the HTML report's inline SVG charts, computed from a report's data.

Each function returns a chart as plain data (bars, lines, points, labels, legend, size) that
the template ``report.html.j2`` writes out; nothing here is HTML, so every label reaches the
page through the template's autoescaping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hwaccel.history.report_format import (
    fixed_settings,
    fmt_latency,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_speedup,
    shorten,
)

# Observable's categorical palette: distinct hues that read on white.
PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2",
           "#97bbf5", "#9c6b4e", "#9498a0")
_LABEL_CHARS = 24


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
