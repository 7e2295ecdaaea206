"""Reports from the DuckDB history: the computed figures, the three renderings, a real browser.

Every test writes its rows through ``Store.insert_result`` (the path real runs take) with
made-up but measured-looking figures, then checks what the report computes from them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hwaccel.errors import HwaccelError, UsageError
from hwaccel.history.report import build_report, cell_status
from hwaccel.history.report_render import render_html, render_json, render_markdown, write_reports
from hwaccel.history.store import MIGRATIONS, Store
from hwaccel.types import BenchmarkResult, Classification

BERT = Classification(model="tiny:bert", family="embedding", subfamily="masked_lm",
                      pipeline="text", model_type="bert")
MINILM = Classification(model="sentence-transformers/all-MiniLM-L6-v2", family="embedding",
                        subfamily="encoder", pipeline="text", model_type="bert")
GPT2 = Classification(model="tiny:gpt2", family="text_generation", subfamily="causal_lm",
                      pipeline="text", model_type="gpt2")
VIT = Classification(model="tiny:vit", family="vision", subfamily="image_classifier",
                     pipeline="vision", model_type="vit")
HOSTILE = "<script>alert(1)</script>"
EVIL = Classification(model=HOSTILE, family="vision", pipeline="vision", model_type="vit")
CHROMIUM = Path("/usr/bin/chromium")


def measured(c: Classification, backend: str, device: str, p50: float, *, mem: float = 320.0,
             batch: int = 1, seq: int = 32, device_mb: float | None = None) -> BenchmarkResult:
    """A successful result with latencies spread around ``p50`` as a real run's would be."""
    mean = p50 * 1.04
    return BenchmarkResult(
        model=c.model, backend=backend, device=device, success=True, load_time_s=0.21,
        cold_ms=p50 * 3.7, iterations=240, p50_ms=p50, p90_ms=p50 * 1.18, p99_ms=p50 * 1.61,
        mean_ms=mean, stdev_ms=p50 * 0.09, min_ms=p50 * 0.93, max_ms=p50 * 1.9,
        cv=0.087, throughput=1000.0 * batch / mean, batch_size=batch, seq_len=seq, threads=2,
        baseline_rss_mb=281.5, peak_rss_mb=mem, device_peak_mb=device_mb, load_avg=0.62,
        max_abs_diff=None if backend == "cpu" else 1.4e-07, plugin=backend)


def failed(c: Classification, backend: str, device: str, category: str,
           error: str) -> BenchmarkResult:
    """A failed (or not attempted) result with its category."""
    return BenchmarkResult(model=c.model, backend=backend, device=device, success=False,
                           error=error, error_category=category, seq_len=32, plugin=backend)


def insert(path: Path, run_id: str, *items: tuple[BenchmarkResult, Classification],
           **context: Any) -> None:
    with Store(path) as store:
        for result, classification in items:
            store.insert_result(result, classification, run_id, **context)


def report(path: Path, **kwargs: Any) -> dict[str, Any]:
    with Store(path, read_only=True) as store:
        return build_report(store, **kwargs)


def cell(data: dict[str, Any], model: str, backend: str, device: str | None = None
         ) -> dict[str, Any]:
    found = [c for c in data["cells"] if c["model"] == model and c["backend"] == backend
             and (device is None or c["device"] == device)]
    assert len(found) == 1, found
    return found[0]


def populate(path: Path) -> None:
    """Two runs over four models and four backends, with every kind of outcome."""
    insert(path, "run-a",
           (measured(BERT, "cpu", "cpu", 8.0, mem=310.0), BERT),
           (measured(BERT, "openvino", "CPU", 2.5, mem=372.0), BERT),
           (measured(GPT2, "cpu", "cpu", 12.0), GPT2),
           (measured(VIT, "cpu", "cpu", 20.0, mem=402.0), VIT))
    insert(path, "run-b",
           (measured(BERT, "cpu", "cpu", 10.0, mem=318.0), BERT),
           (measured(BERT, "openvino", "CPU", 2.0, mem=370.0), BERT),
           (measured(BERT, "cuda", "cuda:0", 0.5, mem=900.0, device_mb=42.0), BERT),
           (measured(MINILM, "cpu", "cpu", 6.0), MINILM),
           (failed(MINILM, "openvino", "CPU", "conversion",
                   "convert_model: unsupported op | aten::scaled_dot_product"), MINILM),
           (measured(GPT2, "cpu", "cpu", 15.0), GPT2),
           (failed(GPT2, "openvino", "CPU", "timeout",
                   "no result within the time limit of 60 s; killed"), GPT2),
           (measured(VIT, "cpu", "cpu", 16.0, mem=405.0), VIT),
           (failed(VIT, "cuda", "cuda", "unavailable", "no CUDA device: torch.cuda says 0"),
            VIT),
           (measured(EVIL, "cpu", "cpu", 3.0, mem=350.0), EVIL))


@pytest.fixture
def history(tmp_db: Path) -> Path:
    populate(tmp_db)
    return tmp_db


def test_speedup_is_cpu_p50_over_the_backends_p50(history):
    data = report(history)
    assert cell(data, "tiny:bert", "cpu")["speedup_vs_cpu"] == pytest.approx(1.0)
    assert cell(data, "tiny:bert", "openvino")["speedup_vs_cpu"] == pytest.approx(10.0 / 2.0)
    assert cell(data, "tiny:bert", "cuda")["speedup_vs_cpu"] == pytest.approx(10.0 / 0.5)
    assert cell(data, "tiny:gpt2", "openvino")["speedup_vs_cpu"] is None  # it failed


def test_speedup_compares_only_equal_batch_and_sequence(tmp_db):
    insert(tmp_db, "run-a", (measured(BERT, "cpu", "cpu", 8.0, batch=1), BERT),
           (measured(BERT, "openvino", "CPU", 3.0, batch=4), BERT),
           (measured(GPT2, "openvino", "CPU", 3.0), GPT2))
    data = report(tmp_db)
    assert cell(data, "tiny:bert", "openvino")["speedup_vs_cpu"] is None
    assert cell(data, "tiny:gpt2", "openvino")["speedup_vs_cpu"] is None  # no CPU cell


def test_the_latest_row_of_a_cell_wins_within_the_selection(history):
    everything = report(history)
    bert = cell(everything, "tiny:bert", "cpu")
    assert (bert["run_id"], bert["p50_ms"], bert["memory_mib"]) == ("run-b", 10.0, 318.0)
    first = report(history, run_ids=["run-a"])
    bert = cell(first, "tiny:bert", "cpu")
    assert (bert["run_id"], bert["p50_ms"]) == ("run-a", 8.0)
    assert cell(first, "tiny:bert", "openvino")["speedup_vs_cpu"] == pytest.approx(8.0 / 2.5)
    assert {c["run_id"] for c in first["cells"]} == {"run-a"}
    assert first["summary"] == {"cells": 4, "passed": 4, "failed": 0, "not_tested": 0,
                                "models": 3, "backends": 2}


def test_a_later_failure_replaces_an_earlier_pass(tmp_db):
    insert(tmp_db, "run-a", (measured(GPT2, "openvino", "CPU", 1.0), GPT2))
    insert(tmp_db, "run-b", (failed(GPT2, "openvino", "CPU", "crash", "exit code -11"), GPT2))
    gpt2 = cell(report(tmp_db), "tiny:gpt2", "openvino")
    assert (gpt2["status"], gpt2["reason"], gpt2["p50_ms"]) == (
        "fail", "crash: exit code -11", None)


@pytest.mark.parametrize(("row", "expected"), [
    ({"success": True, "test_status": None}, ("pass", None)),
    ({"success": True, "test_status": "passed", "test_summary": "6 passed"}, ("pass", None)),
    ({"success": True, "test_status": "failed", "test_summary": "1 failed, 5 passed"},
     ("fail", "test failed: 1 failed, 5 passed")),
    ({"success": True, "test_status": "timeout", "error": "killed after 60 s"},
     ("fail", "test timeout: killed after 60 s")),
    ({"success": False, "error_category": "unavailable", "error": "no CUDA device"},
     ("not-tested", "no CUDA device")),
    ({"success": False, "error_category": "model-unavailable", "error": "not in the cache"},
     ("not-tested", "not in the cache")),
    ({"success": False, "error_category": "no-node", "error": "no node has rocm"},
     ("not-tested", "no node has rocm")),
    ({"success": False, "error_category": "unsupported", "error": "fp16 on cpu"},
     ("not-tested", "fp16 on cpu")),
    ({"success": False, "error_category": "oom", "error": "CUDA out of memory"},
     ("fail", "oom: CUDA out of memory")),
    ({"success": False, "error_category": "test-failed", "error": "generated test failed"},
     ("fail", "test-failed: generated test failed")),
])
def test_cell_status(row, expected):
    assert cell_status(row) == expected


def test_not_tested_and_failed_cells_from_the_database(history, tmp_db):
    insert(tmp_db, "run-c", (measured(VIT, "openvino", "CPU", 4.0), VIT),
           test_status="failed", test_summary="1 failed, 5 passed", source="matrix")
    data = report(history)
    vit_cuda = cell(data, "tiny:vit", "cuda")
    assert (vit_cuda["status"], vit_cuda["reason"]) == (
        "not-tested", "no CUDA device: torch.cuda says 0")
    assert cell(data, "tiny:gpt2", "openvino")["reason"] == (
        "timeout: no result within the time limit of 60 s; killed")
    vit_ov = cell(data, "tiny:vit", "openvino")
    assert (vit_ov["status"], vit_ov["reason"], vit_ov["speedup_vs_cpu"]) == (
        "fail", "test failed: 1 failed, 5 passed", None)
    assert data["summary"] == {"cells": 11, "passed": 7, "failed": 3, "not_tested": 1,
                               "models": 5, "backends": 3}


def test_matrix_counts_statuses_and_reasons(history):
    data = report(history)
    assert data["backends"] == ["cpu", "cuda", "openvino"]
    rows = {(r["family"], r["pipeline"]): r for r in data["matrix"]}
    assert list(rows) == [("embedding", "text"), ("text_generation", "text"),
                          ("vision", "vision")]
    embedding = rows[("embedding", "text")]
    assert embedding["models"] == ["sentence-transformers/all-MiniLM-L6-v2", "tiny:bert"]
    assert embedding["entries"]["cpu"] == {"passed": 2, "failed": 0, "not_tested": 0,
                                           "status": "pass", "reasons": []}
    assert embedding["entries"]["openvino"] == {
        "passed": 1, "failed": 1, "not_tested": 0, "status": "partial",
        "reasons": ["conversion: convert_model: unsupported op | aten::scaled_dot_product"]}
    assert embedding["entries"]["cuda"]["status"] == "pass"
    generation = rows[("text_generation", "text")]
    assert generation["entries"]["openvino"]["status"] == "fail"
    assert generation["entries"]["cuda"] is None
    vision = rows[("vision", "vision")]
    assert vision["entries"]["cuda"] == {"passed": 0, "failed": 0, "not_tested": 1,
                                         "status": "not-tested",
                                         "reasons": ["no CUDA device: torch.cuda says 0"]}
    assert vision["entries"]["cpu"]["passed"] == 2  # tiny:vit and the hostile name


def test_fastest_backend_and_peak_memory(history, tmp_db):
    # a second CUDA device with more memory, and a failed cell faster than any passing one
    insert(tmp_db, "run-c", (measured(BERT, "cuda", "cuda:1", 0.8, mem=950.0,
                                      device_mb=40.0), BERT))
    insert(tmp_db, "run-c", (measured(GPT2, "openvino", "CPU", 0.1), GPT2),
           test_status="error", test_summary="1 error", source="matrix")
    data = report(history)
    fastest = {f["model"]: f for f in data["fastest"]}
    assert (fastest["tiny:bert"]["backend"], fastest["tiny:bert"]["device"]) == ("cuda",
                                                                                 "cuda:0")
    assert fastest["tiny:bert"]["speedup_vs_cpu"] == pytest.approx(20.0)
    assert (fastest["tiny:gpt2"]["backend"], fastest["tiny:gpt2"]["p50_ms"]) == ("cpu", 15.0)
    memory = {(m["model"], m["backend"]): m for m in data["memory"]}
    assert memory[("tiny:bert", "cuda")] == {
        "model": "tiny:bert", "pipeline": "text", "backend": "cuda", "device": "cuda:1",
        "memory_mib": 950.0, "device_memory_mib": 42.0}
    assert memory[("tiny:bert", "openvino")]["memory_mib"] == 370.0
    assert ("tiny:gpt2", "openvino") not in memory  # failed cells measure nothing usable
    assert ("tiny:vit", "cuda") not in memory


def test_trends_follow_every_successful_run_in_time_order(history, tmp_db):
    insert(tmp_db, "run-c", (measured(BERT, "cpu", "cpu", 6.0), BERT),
           (failed(BERT, "openvino", "CPU", "crash", "exit code -9"), BERT),
           (measured(BERT, "cpu", "cpu", 30.0, batch=8), BERT))
    data = report(history)
    series = {(t["model"], t["backend"], t["batch_size"]): t for t in data["trends"]}
    cpu = series[("tiny:bert", "cpu", 1)]
    assert [(p["run_id"], p["p50_ms"]) for p in cpu["points"]] == [
        ("run-a", 8.0), ("run-b", 10.0), ("run-c", 6.0)]
    assert cpu["change_pct"] == pytest.approx((6.0 - 8.0) / 8.0 * 100)
    openvino = series[("tiny:bert", "openvino", 1)]  # the crash adds no point
    assert [p["p50_ms"] for p in openvino["points"]] == [2.5, 2.0]
    assert openvino["change_pct"] == pytest.approx(-20.0)
    assert series[("tiny:bert", "cpu", 8)]["change_pct"] is None  # one point only
    assert series[("tiny:bert", "cuda", 1)]["change_pct"] is None
    # trends span the history even when the report selects one run
    only_b = report(history, run_ids=["run-b"])
    cpu = next(t for t in only_b["trends"] if t["model"] == "tiny:bert" and t["backend"] == "cpu"
               and t["batch_size"] == 1)
    assert [p["run_id"] for p in cpu["points"]] == ["run-a", "run-b", "run-c"]


def test_runs_join_the_runs_table_with_counts_of_their_rows(tmp_db):
    with Store(tmp_db) as store:
        store.start_run("run-m", "matrix", planned=3, settings={"seq_len": 32}, node="n1")
    insert(tmp_db, "run-m", (measured(BERT, "cpu", "cpu", 5.0), BERT),
           (failed(BERT, "cuda", "cuda", "unavailable", "no CUDA device"), BERT),
           (failed(GPT2, "cpu", "cpu", "oom", "killed at 4 GiB"), GPT2), source="matrix")
    with Store(tmp_db) as store:
        store.finish_run("run-m", "finished")
    insert(tmp_db, "run-x", (measured(BERT, "cpu", "cpu", 5.5), BERT), source="benchmark")
    runs = {r["run_id"]: r for r in report(tmp_db)["runs"]}
    assert list(runs) == ["run-m", "run-x"]
    matrix = runs["run-m"]
    assert (matrix["command"], matrix["status"], matrix["planned"], matrix["node"]) == (
        "matrix", "finished", 3, "n1")
    assert matrix["settings"] == {"seq_len": 32}
    assert (matrix["rows"], matrix["passed"], matrix["failed"], matrix["not_tested"],
            matrix["models"], matrix["backends"]) == (3, 1, 1, 1, 2, ["cpu", "cuda"])
    assert (runs["run-x"]["command"], runs["run-x"]["status"]) == ("benchmark", None)


def test_unknown_run_id_is_one_clear_error(history):
    with pytest.raises(UsageError, match="no results recorded for run run-zz"):
        report(history, run_ids=["run-a", "run-zz"])


def test_an_empty_database_gives_an_empty_report_in_every_format(tmp_db):
    Store(tmp_db).close()
    data = report(tmp_db)
    assert data["cells"] == data["matrix"] == data["trends"] == data["runs"] == []
    assert "No results recorded." in render_markdown(data)
    assert 'data-chart="latency"' not in render_html(data)
    assert json.loads(render_json(data)) == data


def test_an_old_schema_without_test_columns_reads_them_as_null(tmp_db):
    with duckdb.connect(str(tmp_db)) as conn:
        conn.execute(MIGRATIONS[0])
        conn.execute("INSERT INTO hardware_results (model_id, hardware, device, success, "
                     "p50_ms, timestamp, run_id, pipeline) VALUES ('tiny:bert', 'cpu', 'cpu', "
                     "true, 4.0, now(), 'old', 'text')")
    data = report(tmp_db)
    assert [(c["status"], c["p50_ms"], c["test_status"]) for c in data["cells"]] == [
        ("pass", 4.0, None)]
    assert data["runs"][0]["run_id"] == "old"


def test_the_report_is_json_safe(history):
    data = report(history)
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert json.loads(render_json(data)) == data


def test_markdown_has_the_matrix_and_the_per_model_figures(history):
    text = render_markdown(report(history))
    assert "| family | pipeline | models | cpu | cuda | openvino |" in text
    assert ("| embedding | text | sentence-transformers/all-MiniLM-L6-v2, tiny:bert | pass 2/2 "
            "| pass 1/1 | partial 1/2: conversion: convert_model: unsupported op \\| "
            "aten::scaled_dot_product |") in text
    assert "| vision | vision | \\<script\\>alert(1)\\</script\\>, tiny:vit | pass 2/2 | " \
           "not tested [1] | - |" in text
    assert "\n[1] no CUDA device: torch.cuda says 0  \n" in text  # each reason once, by number
    assert "| tiny:bert | text | cuda | cuda:0 | pass | 0.500 | 0.590 | 20.00x | 900 | 42 |" \
        in text
    assert "| tiny:bert | text | cuda | cuda:0 | 0.500 | 20.00x |" in text  # fastest
    assert "| tiny:bert | cpu | cpu | 1 | 32 | fp32 | 2 | 8.00 | 10.00 | +25.0 % |" in text
    assert "Compatibility errors" not in text
    for line in text.splitlines():  # every table row keeps its column count
        if line.startswith("| model | pipeline | backend | device | status"):
            columns = line.count(" | ")
        elif line.startswith("| tiny:") and "| pass |" in line:
            assert len(re.split(r"(?<!\\) \| ", line)) - 1 == columns, line


def compatibility() -> dict[str, Any]:
    return {"errors": [{"severity": "error", "component": "hwaccel-cuda", "hardware": "cuda",
                        "error_type": "ImportError", "message": "libcudart.so.12: <missing>",
                        "recommendations": ["install the CUDA 12 runtime"], "details": {}}],
            "summary": {"critical": 0, "error": 1, "warning": 0, "info": 0}}


def test_compatibility_errors_render_only_when_given(history):
    data = report(history)
    assert "Compatibility errors" not in render_html(data)
    data["compatibility"] = compatibility()
    text = render_markdown(data)
    assert "0 critical, 1 error, 0 warning, 0 info." in text
    assert ("| error | hwaccel-cuda | cuda | ImportError | libcudart.so.12: \\<missing\\> "
            "| install the CUDA 12 runtime |") in text
    page = render_html(data)
    assert "<h2>Compatibility errors</h2>" in page
    assert "libcudart.so.12: &lt;missing&gt;" in page
    assert "<li>install the CUDA 12 runtime</li>" in page


def test_html_escapes_every_string_and_is_self_contained(history):
    page = render_html(report(history))
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert not re.search(r"(https?:|//[a-z]|url\(|@import|<link|<img|src=)", page, re.I)
    for kind in ("latency", "memory", "trend"):
        assert f'<svg class="chart" data-chart="{kind}"' in page
    assert "aten::scaled_dot_product" in page


def test_html_notes_the_missing_trend_with_a_single_run(tmp_db):
    insert(tmp_db, "run-a", (measured(BERT, "cpu", "cpu", 8.0), BERT))
    page = render_html(report(tmp_db))
    assert 'data-chart="latency"' in page and 'data-chart="memory"' in page
    assert 'data-chart="trend"' not in page
    assert "No trend yet" in page


def test_bar_heights_follow_the_values(history):
    page = render_html(report(history, run_ids=["run-b"]))
    latency = page.split('data-chart="latency"')[1].split("</svg>")[0]
    bars = re.findall(r'<rect class="mark" x="[\d.]+" y="([\d.]+)" width="[\d.]+" '
                      r'height="([\d.]+)" fill="[^"]+"><title>([^<]*?): p50', latency)
    heights = {title: float(h) for _, h, title in bars}
    assert all(h > 0 for h in heights.values())
    assert heights["tiny:bert on cpu (cpu)"] > heights["tiny:bert on openvino (CPU)"] > \
        heights["tiny:bert on cuda (cuda:0)"]


def test_write_reports_writes_each_format_and_fails_clearly(history, tmp_path):
    data = report(history)
    paths = write_reports(data, tmp_path / "out" / "nested")
    assert [p.name for p in paths] == ["hwaccel-report.md", "hwaccel-report.json",
                                       "hwaccel-report.html"]
    assert json.loads(paths[1].read_text()) == data
    assert write_reports(data, tmp_path / "md", formats=["md"]) == [
        tmp_path / "md" / "hwaccel-report.md"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(HwaccelError, match=r"cannot write the report to .*a-file/sub"):
        write_reports(data, blocker / "sub")
    with pytest.raises(UsageError, match="unknown report format pdf"):
        write_reports(data, tmp_path / "x", formats=["pdf"])


BROWSER_ARGS = ["--no-sandbox", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]
MARK_BOXES = """
kind => Array.from(document.querySelectorAll(
    `svg.chart[data-chart="${kind}"] .mark`)).map(m => {
  const r = m.getBoundingClientRect();
  return {tag: m.tagName, w: r.width, h: r.height,
          title: m.querySelector('title') ? m.querySelector('title').textContent : null};
})
"""


@pytest.mark.slow
def test_the_html_report_renders_offline_in_chromium(history, tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium)")
    from playwright.sync_api import sync_playwright

    data = report(history)
    data["compatibility"] = compatibility()
    (page_path,) = write_reports(data, tmp_path / "html", formats=["html"])
    url = page_path.as_uri()
    blocked, errors, dialogs = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url == url
                       else (blocked.append(route.request.url), route.abort()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            boxes = {kind: page.evaluate(MARK_BOXES, kind)
                     for kind in ("latency", "memory", "trend")}
            text = page.inner_text("body")
        finally:
            browser.close()
    assert blocked == [] and errors == [] and dialogs == []
    assert HOSTILE in text  # shown as text, never run
    assert {b["tag"] for b in boxes["latency"]} == {"rect"}
    assert {b["tag"] for b in boxes["trend"]} == {"path", "circle"}
    # one bar per passing cell, one per model and backend, one line and point per run
    assert len(boxes["latency"]) == data["summary"]["passed"]
    assert len(boxes["memory"]) == len(data["memory"])
    assert len([b for b in boxes["trend"] if b["tag"] == "path"]) == 4
    for kind, marks in boxes.items():
        for mark in marks:
            assert mark["w"] > 0 and mark["h"] > 0, (kind, mark)
            assert mark["title"], (kind, mark)


def test_failures_are_grouped_by_whose_they_are_harness_first(tmp_db):
    moe = Classification(model="tiny:mixtral", family="text_generation", pipeline="moe",
                         model_type="mixtral")
    insert(tmp_db, "run-x",
           (failed(GPT2, "openvino", "CPU", "backend", "conversion: unsupported op"), GPT2),
           (failed(VIT, "cpu", "cpu", "model", "reference: IndexError in modeling_vit"), VIT),
           (failed(moe, "openvino", "CPU", "harness", "inputs: no image size"), moe),
           (failed(BERT, "cpu", "cpu", "harness", "inputs: KeyError"), BERT),
           (failed(MINILM, "cpu", "cpu", "unavailable", "absent"), MINILM))
    data = report(tmp_db)
    groups = [(g["category"], g["count"]) for g in data["failures"]]
    assert groups == [("harness", 2), ("model", 1), ("backend", 1)]  # not-tested is apart
    harness = {c["model"] for c in data["failures"][0]["cells"]}
    assert harness == {"tiny:mixtral", "tiny:bert"}
    markdown = render_markdown(data)
    section = markdown.split("## Failures by whose they are")[1].split("\n## ")[0]
    assert section.index("### harness (2)") < section.index("### model (1)") < \
        section.index("### backend (1)")
    page = render_html(data)
    assert page.index('id="failures-harness"') < page.index('id="failures-backend"')


def test_pipeline_labels_of_one_model_groups_do_not_overlap(tmp_db):
    pipelines = ["moe", "multimodal", "rag", "state-space", "vision-text", "audio"]
    items = [Classification(model=f"tiny:{p}", family="vision", pipeline=p, model_type=p)
             for p in pipelines]
    insert(tmp_db, "run-y", *[(measured(c, "cpu", "cpu", 5.0), c) for c in items])
    page = render_html(report(tmp_db))
    latency = page.split('data-chart="latency"')[1].split("</svg>")[0]
    bands = [(float(x), text) for x, text in
             re.findall(r'<text class="band" x="([\d.]+)"[^>]*>([^<]+)</text>', latency)]
    assert [text for _, text in bands] == sorted(pipelines)
    char_w = 6.2  # an upper bound of the 11 px font's advance, as the layout assumes
    for (x1, a), (x2, b) in zip(bands, bands[1:], strict=False):
        assert x1 + len(a) * char_w / 2 < x2 - len(b) * char_w / 2, (a, b)


def test_a_simulators_latency_is_labelled_and_never_ranked_or_compared(history, tmp_db):
    # QNN's HTP simulator: faster than every device here, but its latency is not the NPU's
    simulated = measured(BERT, "qnn", "qnn:htp", 0.1)
    simulated = BenchmarkResult(**{**simulated.to_dict(), "details": {
        "latency_simulated": True, "latency_of": "Qualcomm's HTP simulator on this x86_64 CPU"}})
    insert(tmp_db, "run-c", (simulated, BERT))
    data = report(history)
    on_htp = cell(data, "tiny:bert", "qnn")
    assert on_htp["latency_of"] == "Qualcomm's HTP simulator on this x86_64 CPU"
    assert on_htp["speedup_vs_cpu"] is None
    assert {f["model"]: f["backend"] for f in data["fastest"]}["tiny:bert"] == "cuda"
    assert cell(data, "tiny:bert", "cuda")["latency_of"] is None
    row = next(line for line in render_markdown(data).splitlines()
               if line.startswith("| tiny:bert | text | qnn |"))
    assert "0.100 (simulator)" in row
    assert "0.100 (simulator)" in render_html(data)
