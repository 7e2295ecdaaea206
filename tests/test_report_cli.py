"""``hwaccel report``: formats, files, run selection and the compatibility findings."""

from __future__ import annotations

import json

from conftest import run_cli
from hwaccel.history.store import Store
from hwaccel.types import BenchmarkResult, Classification

VIT = Classification(model="tiny:vit", family="vision", subfamily="image_classification",
                     pipeline="vision", model_type="vit")


def fill(db) -> None:
    """One run where OpenVINO is 4x faster than the CPU for tiny:vit."""
    with Store(db) as store:
        for backend, device, p50 in (("cpu", "cpu", 2.0), ("openvino", "CPU", 0.5)):
            store.insert_result(BenchmarkResult(model="tiny:vit", backend=backend,
                                                device=device, success=True, p50_ms=p50,
                                                mean_ms=p50, peak_rss_mb=300.0),
                                VIT, "0123abcd-run", source="matrix", test_status="passed")


def test_default_is_markdown_on_stdout_with_the_speedup(tmp_db):
    fill(tmp_db)
    proc = run_cli("report", "--db", str(tmp_db))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# hwaccel compatibility report")
    assert "| vision | vision | tiny:vit | pass 1/1 | pass 1/1 |" in proc.stdout
    assert "4.00x" in proc.stdout  # 2.0 ms on the CPU / 0.5 ms on OpenVINO


def test_output_dir_writes_all_three_and_json_lists_them(tmp_db, tmp_path):
    fill(tmp_db)
    out = tmp_path / "reports"
    proc = run_cli("report", "--db", str(tmp_db), "--output-dir", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout)["files"]
    assert sorted(p.rsplit("/", 1)[1] for p in files) == [
        "hwaccel-report.html", "hwaccel-report.json", "hwaccel-report.md"]
    data = json.loads((out / "hwaccel-report.json").read_text())
    assert {c["backend"]: c["speedup_vs_cpu"] for c in data["cells"]} == \
        {"cpu": 1.0, "openvino": 4.0}


def test_run_prefix_selects_and_bad_choices_are_one_line(tmp_db):
    fill(tmp_db)
    proc = run_cli("report", "--db", str(tmp_db), "--run", "0123", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run_ids"] == ["0123abcd-run"]
    for args, needle in ((("--run", "ffff"), "matches 0 runs"),
                         (("--format", "md", "html"), "several formats need --output-dir")):
        proc = run_cli("report", "--db", str(tmp_db), *args)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_check_model_adds_compatibility_findings_even_without_a_history(tmp_path):
    db = tmp_path / "fresh.duckdb"
    proc = run_cli("report", "--db", str(db), "--check-model", "nobody/no-such-model",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)["compatibility"]["errors"]
    model = [e for e in found if e["component"] == "model_integration"]
    assert model and "nobody/no-such-model" in model[0]["message"]
    assert all(e["recommendations"] for e in model)
    absent = {e["hardware"] for e in found if e["error_type"] == "backend_absent"}
    assert "cuda" in absent  # this machine has no CUDA, and says why
