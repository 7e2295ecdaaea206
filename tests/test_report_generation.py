"""The report's generation, precision and sweep sections, from hand-made rows in DuckDB.

Every row goes in through ``Store.insert_result`` with figures chosen here; the assertions
recompute the expected ratios and orders from those figures.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hwaccel.history.report import build_report
from hwaccel.history.report_render import (
    render_html,
    render_json,
    render_markdown,
    write_reports,
)
from hwaccel.history.store import MIGRATIONS, Store
from hwaccel.types import BenchmarkResult, Classification

GPT2 = Classification(model="tiny:gpt2", family="text_generation", subfamily="causal_lm",
                      pipeline="text", model_type="gpt2")
BERT = Classification(model="tiny:bert", family="embedding", subfamily="masked_lm",
                      pipeline="text", model_type="bert")
REFERENCE = ("cpu",)


def forward(c: Classification, backend: str, device: str, p50: float, *,
            precision: str = "fp32", requested: str | None = None, batch: int = 1,
            seq: int = 32, throughput: float | None = None, diff: float | None = None,
            cosine: float | None = None) -> BenchmarkResult:
    """A passing forward-call row."""
    details: dict[str, Any] = {}
    if requested:
        details["requested_precision"] = requested
    if cosine is not None:
        details["cosine_similarity"] = cosine
    return BenchmarkResult(
        model=c.model, backend=backend, device=device, success=True, iterations=50,
        p50_ms=p50, p90_ms=p50 * 1.1, mean_ms=p50, batch_size=batch, seq_len=seq,
        throughput=1000.0 * batch / p50 if throughput is None else throughput,
        precision=precision, max_abs_diff=diff, details=details, peak_rss_mb=300.0)


def generated(c: Classification, backend: str, device: str, call_p50: float, *,
              ttft: float, tpot: float, tokens_per_s: float, match: float | None,
              kv: str, precision: str = "fp32", requested: str | None = None,
              prompt: int = 32, new_tokens: int = 16) -> BenchmarkResult:
    """A passing generation row: whole calls of ``call_p50`` ms, their token figures."""
    return BenchmarkResult(
        model=c.model, backend=backend, device=device, success=True, iterations=10,
        p50_ms=call_p50, p90_ms=call_p50 * 1.05, mean_ms=call_p50, batch_size=1,
        seq_len=prompt, new_tokens=new_tokens, ttft_ms=ttft, tpot_p50_ms=tpot,
        tpot_p90_ms=tpot * 1.2, tokens_per_s=tokens_per_s, token_match=match, kv_cache=kv,
        precision=precision, peak_rss_mb=400.0,
        details={"requested_precision": requested} if requested else {})


def insert(path: Path, run_id: str, *items: tuple[BenchmarkResult, Classification]) -> None:
    with Store(path) as store:
        for result, classification in items:
            store.insert_result(result, classification, run_id)


def report(path: Path, **kwargs: Any) -> dict[str, Any]:
    with Store(path, read_only=True) as store:
        return build_report(store, reference=REFERENCE, **kwargs)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """GPT-2 generation on the CPU and on OpenVINO at three precisions, BERT forward calls
    at two precisions, then one run that sweeps batch sizes and lengths."""
    path = tmp_path_factory.mktemp("generation") / "results.duckdb"
    insert(path, "run-gen",
           (generated(GPT2, "cpu", "cpu", 200.0, ttft=20.0, tpot=11.0, tokens_per_s=80.0,
                      match=1.0, kv="dynamic"), GPT2),
           (generated(GPT2, "openvino", "CPU", 100.0, ttft=10.0, tpot=6.0,
                      tokens_per_s=160.0, match=1.0, kv="stateful"), GPT2),
           (generated(GPT2, "openvino", "CPU", 50.0, ttft=5.0, tpot=3.0, tokens_per_s=320.0,
                      match=0.875, kv="stateful", precision="bf16", requested="native"),
            GPT2),
           (generated(GPT2, "openvino", "CPU", 40.0, ttft=4.0, tpot=2.5, tokens_per_s=400.0,
                      match=0.75, kv="stateful", precision="int8"), GPT2),
           (forward(BERT, "cpu", "cpu", 10.0), BERT),
           (forward(BERT, "openvino", "CPU", 5.0, diff=2e-6, cosine=0.999999), BERT),
           (forward(BERT, "openvino", "CPU", 2.5, precision="bf16", requested="native",
                    diff=0.03, cosine=0.99991), BERT))
    # the sweep run: recorded out of order, so the report must sort the points
    insert(path, "run-sweep",
           *[(forward(BERT, "openvino", "CPU", 2.5, precision="bf16", requested="native",
                      batch=b, seq=64, throughput=t), BERT)
             for b, t in ((4, 900.0), (1, 400.0), (8, 1100.0), (2, 700.0))],
           *[(forward(BERT, "cpu", "cpu", p, seq=s), BERT)
             for s, p in ((128, 30.0), (16, 6.0), (64, 14.0))],
           *[(generated(GPT2, "openvino", "CPU", 90.0 + p, ttft=t, tpot=6.0,
                        tokens_per_s=150.0, match=1.0, kv="stateful", prompt=p), GPT2)
             for p, t in ((64, 18.0), (8, 7.0))])
    return path


@pytest.fixture(scope="module")
def data(history: Path) -> dict[str, Any]:
    return report(history, run_ids=["run-gen", "run-sweep"])


def rows_by_precision(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["precision_label"]: r for r in rows}


def test_generation_table_has_each_device_and_precision_with_its_token_figures(data):
    (table,) = [t for t in data["generation"] if t["model"] == "tiny:gpt2"]
    assert [t["model"] for t in data["generation"]] == ["tiny:gpt2"]  # BERT never generated
    at_32 = [r for r in table["rows"] if r["seq_len"] == 32]
    assert [(r["backend"], r["precision_label"]) for r in at_32] == [
        ("cpu", "fp32"), ("openvino", "fp32"), ("openvino", "int8"),
        ("openvino", "native (bf16)")]
    rows = rows_by_precision(at_32[1:])
    native = rows["native (bf16)"]
    assert (native["ttft_ms"], native["tpot_p50_ms"], native["tpot_p90_ms"],
            native["tokens_per_s"], native["token_match"], native["kv_cache"],
            native["new_tokens"]) == (5.0, 3.0, pytest.approx(3.0 * 1.2), 320.0, 0.875,
                                      "stateful", 16)
    # whole generate calls against the CPU's, at the same prompt and new tokens
    assert native["speedup_vs_cpu"] == pytest.approx(200.0 / 50.0)
    assert rows["int8"]["speedup_vs_cpu"] == pytest.approx(200.0 / 40.0)
    assert rows["fp32"]["speedup_vs_cpu"] == pytest.approx(200.0 / 100.0)
    # the prompt-length sweep's rows have no CPU row at their prompt length
    assert {r["speedup_vs_cpu"] for r in table["rows"] if r["seq_len"] != 32} == {None}


def test_each_precision_of_a_device_keeps_its_row_ratio_and_difference(data):
    groups = {(g["model"], g["backend"], g["batch_size"], g["seq_len"], g["new_tokens"]): g
              for g in data["precisions"]}
    bert = groups[("tiny:bert", "openvino", 1, 32, 0)]
    assert bert["reference"] == {"backend": "cpu", "device": "cpu", "precision": "fp32",
                                 "p50_ms": 10.0, "run_id": "run-gen"}
    rows = rows_by_precision(bert["rows"])
    assert set(rows) == {"fp32", "native (bf16)"}
    assert rows["fp32"]["speedup_vs_cpu"] == pytest.approx(10.0 / 5.0)
    assert rows["native (bf16)"]["speedup_vs_cpu"] == pytest.approx(10.0 / 2.5)
    assert (rows["native (bf16)"]["max_abs_diff"], rows["native (bf16)"]["cosine_similarity"],
            rows["native (bf16)"]["requested_precision"]) == (0.03, 0.99991, "native")
    gpt2 = groups[("tiny:gpt2", "openvino", 1, 32, 16)]
    assert {r["precision_label"]: r["token_match"] for r in gpt2["rows"]} == {
        "fp32": 1.0, "native (bf16)": 0.875, "int8": 0.75}
    # the CPU ran one precision per setting, a sweep's batch sizes are not precisions
    assert not [g for g in data["precisions"] if g["backend"] == "cpu"]
    assert ("tiny:bert", "openvino", 4, 32, 0) not in groups


def test_a_later_row_at_other_settings_does_not_hide_a_measurement(data):
    # the matrix cell is the latest row (the sweep's last BERT OpenVINO row, batch 2) ...
    (cell,) = [c for c in data["cells"] if c["model"] == "tiny:bert"
               and c["backend"] == "openvino"]
    assert (cell["run_id"], cell["batch_size"], cell["seq_len"]) == ("run-sweep", 2, 64)
    assert cell in data["measurements"]
    # ... and the earlier fp32 and bf16 measurements at batch 1 are still measurements
    kept = {(m["precision"], m["batch_size"], m["seq_len"], m["run_id"])
            for m in data["measurements"]
            if m["model"] == "tiny:bert" and m["backend"] == "openvino"}
    assert kept == {("fp32", 1, 32, "run-gen"), ("bf16", 1, 32, "run-gen"),
                    *{("bf16", b, 64, "run-sweep") for b in (1, 2, 4, 8)}}


def test_the_reference_is_the_cpus_fp32_row_not_a_later_cpu_bf16_one(tmp_path):
    path = tmp_path / "r.duckdb"
    insert(path, "a", (forward(BERT, "cpu", "cpu", 12.0), BERT),
           (forward(BERT, "openvino", "CPU", 3.0), BERT))
    insert(path, "b", (forward(BERT, "cpu", "cpu", 6.0, precision="bf16"), BERT))
    data = report(path)
    speedups = {(m["backend"], m["precision"]): m["speedup_vs_cpu"]
                for m in data["measurements"]}
    assert speedups == {("cpu", "fp32"): pytest.approx(1.0),
                        ("cpu", "bf16"): pytest.approx(12.0 / 6.0),
                        ("openvino", "fp32"): pytest.approx(12.0 / 3.0)}


def test_sweeps_hold_a_runs_points_in_order(data):
    sweeps = {(s["axis"], s["metric"], s["model"], s["backend"]): s for s in data["sweeps"]}
    assert set(sweeps) == {("batch_size", "throughput", "tiny:bert", "openvino"),
                           ("seq_len", "p50_ms", "tiny:bert", "cpu"),
                           ("seq_len", "ttft_ms", "tiny:gpt2", "openvino")}
    batch = sweeps[("batch_size", "throughput", "tiny:bert", "openvino")]
    assert [(p["x"], p["y"]) for p in batch["points"]] == [
        (1, 400.0), (2, 700.0), (4, 900.0), (8, 1100.0)]
    assert (batch["run_id"], batch["precision_label"], batch["seq_len"]) == (
        "run-sweep", "native (bf16)", 64)
    length = sweeps[("seq_len", "p50_ms", "tiny:bert", "cpu")]
    assert [(p["x"], p["y"]) for p in length["points"]] == [(16, 6.0), (64, 14.0),
                                                             (128, 30.0)]
    prompt = sweeps[("seq_len", "ttft_ms", "tiny:gpt2", "openvino")]
    assert [(p["x"], p["y"]) for p in prompt["points"]] == [(8, 7.0), (64, 18.0)]
    assert prompt["new_tokens"] == 16


def test_rows_of_different_runs_make_no_sweep(tmp_path):
    path = tmp_path / "r.duckdb"
    insert(path, "a", (forward(BERT, "cpu", "cpu", 5.0, batch=1), BERT))
    insert(path, "b", (forward(BERT, "cpu", "cpu", 9.0, batch=2), BERT))
    assert report(path)["sweeps"] == []


def test_a_generation_row_is_not_a_trend_point_of_the_forward_call(tmp_path):
    path = tmp_path / "r.duckdb"
    insert(path, "a", (forward(GPT2, "cpu", "cpu", 5.0), GPT2))
    insert(path, "b", (generated(GPT2, "cpu", "cpu", 90.0, ttft=6.0, tpot=5.0,
                                 tokens_per_s=170.0, match=None, kv="dynamic"), GPT2))
    trends = report(path)["trends"]
    assert sorted((t["new_tokens"], len(t["points"])) for t in trends) == [(0, 1), (16, 1)]


def test_markdown_has_the_generation_precision_and_sweep_tables(data):
    text = render_markdown(data)
    generation = text.split("## Generation")[1].split("\n## ")[0]
    assert "### tiny:gpt2" in generation
    assert ("| openvino | CPU | native (bf16) | 1 | 32 | 16 | 5.00 | 3.00 | 3.60 | 320.0 "
            "| 87.5 % | stateful | 50.00 | 4.00x |") in generation
    precisions = text.split("## Precisions")[1].split("\n## ")[0]
    assert "### tiny:bert on openvino (CPU), batch 1, seq 32" in precisions
    assert "Speed-ups against cpu (cpu) fp32: p50 10.00 ms (run run-gen)." in precisions
    assert "| native (bf16) | pass | 2.50 | 400.0 | - | 4.00x | 3.0e-02 | 0.999910 | - | - |" \
        in precisions
    assert "| int8 | pass | 40.00 | - | 400.0 | 5.00x | - | - | 75.0 % | - |" in precisions
    sweeps = text.split("## Sweeps")[1].split("\n## ")[0]
    assert "| model | backend | device | precision | fixed | run | batch size 1 | " \
           "batch size 2 | batch size 4 | batch size 8 |" in sweeps
    assert "| tiny:bert | openvino | CPU | native (bf16) | seq 64 | run-sweep | 400.0 | 700.0 " \
           "| 900.0 | 1,100.0 |" in sweeps
    assert "| tiny:gpt2 | openvino | CPU | fp32 | batch 1, 16 new tokens | run-sweep | 7.00 | " \
           "18.00 |" in sweeps


def test_html_draws_a_tokens_chart_per_device_and_a_line_per_sweep(data):
    page = render_html(data)
    tokens = re.findall(r'<svg class="chart" data-chart="tokens".*?</svg>', page, re.S)
    assert len(tokens) == 2  # the CPU and OpenVINO's CPU device
    (openvino,) = [c for c in tokens if "on openvino (CPU)" in c]
    bars = re.findall(r'<rect class="mark" x="[\d.]+" y="[\d.]+" width="[\d.]+" '
                      r'height="([\d.]+)" fill="[^"]+"><title>tiny:gpt2 ([^:]+):', openvino)
    heights = {label: float(h) for h, label in bars}
    # a bar per precision (and the sweep's prompt lengths), heights in tokens/s order
    assert heights["int8 b1 prompt 32 +16"] > heights["native (bf16) b1 prompt 32 +16"] > \
        heights["fp32 b1 prompt 32 +16"] > 0
    batch = page.split('data-chart="sweep-batch_size-throughput"')[1].split("</svg>")[0]
    assert len(re.findall(r'<path class="mark line"', batch)) == 1
    ys = [float(y) for y in re.findall(r'<circle class="mark" cx="[\d.]+" cy="([\d.]+)"', batch)]
    assert len(ys) == 4 and ys == sorted(ys, reverse=True)  # throughput rises with batch
    for kind in ("sweep-seq_len-p50_ms", "sweep-seq_len-ttft_ms"):
        assert f'data-chart="{kind}"' in page
    assert "<h2>Precisions</h2>" in page and "0.999910" in page
    assert "native (bf16)" in page


def test_an_old_database_without_generation_columns_reports_no_generation(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:
        for migration in MIGRATIONS[:5]:
            conn.execute(migration)
        conn.execute("INSERT INTO hardware_results (model_id, hardware, device, success, "
                     "p50_ms, timestamp, run_id, pipeline, precision, batch_size, seq_len) "
                     "VALUES ('tiny:gpt2', 'cpu', 'cpu', true, 4.0, now(), 'old', 'text', "
                     "'fp32', 1, 32)")
    data = report(path)
    assert data["generation"] == data["precisions"] == data["sweeps"] == []
    (cell,) = data["cells"]
    assert (cell["new_tokens"], cell["tokens_per_s"], cell["speedup_vs_cpu"]) == (
        None, None, 1.0)
    assert "No generation benchmark passed" in render_markdown(data)
    assert render_json(data)


@pytest.mark.slow
def test_the_new_charts_render_offline_in_chromium(data, tmp_path):
    from test_report import BROWSER_ARGS, CHROMIUM, MARK_BOXES

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium)")
    from playwright.sync_api import sync_playwright

    (page_path,) = write_reports(data, tmp_path, formats=["html"])
    kinds = ["tokens", "sweep-batch_size-throughput", "sweep-seq_len-p50_ms",
             "sweep-seq_len-ttft_ms"]
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(page_path.as_uri())
            boxes = {kind: page.evaluate(MARK_BOXES, kind) for kind in kinds}
        finally:
            browser.close()
    assert errors == []
    # a bar per generation measurement with tokens/s; a line and a point per sweep point
    assert len(boxes["tokens"]) == sum(len(t["rows"]) for t in data["generation"])
    assert [b["tag"] for b in boxes["sweep-batch_size-throughput"]] == ["path"] + ["circle"] * 4
    for kind, marks in boxes.items():
        for mark in marks:
            assert mark["w"] > 0 and mark["h"] > 0 and mark["title"], (kind, mark)


def test_the_fastest_result_is_the_highest_speed_up_at_any_precision(data):
    fastest = {f["model"]: f for f in data["fastest"]}
    # BERT: bf16 at batch 1, seq 64 against the CPU's 14 ms there (5.6x) beats bf16 at seq
    # 32 (10/2.5 = 4x); the latest cell (batch 2, seq 64) has no CPU row to compare with.
    # GPT-2: int8's 200/40 = 5x
    assert (fastest["tiny:bert"]["precision_label"], fastest["tiny:bert"]["batch_size"],
            fastest["tiny:bert"]["seq_len"], fastest["tiny:bert"]["speedup_vs_cpu"]) == (
        "native (bf16)", 1, 64, pytest.approx(14.0 / 2.5))
    assert (fastest["tiny:gpt2"]["precision_label"], fastest["tiny:gpt2"]["new_tokens"],
            fastest["tiny:gpt2"]["speedup_vs_cpu"]) == ("int8", 16, pytest.approx(5.0))
    assert "| tiny:gpt2 | text | openvino | CPU | 40.00 | 5.00x | int8 | 1 | 32 | 16 |" in \
        render_markdown(data)
