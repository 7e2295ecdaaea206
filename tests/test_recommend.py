"""Recommendations: devices ranked by the history's latencies, rejected for memory or failures.

The CLI runs on this machine's real detection (the CPU and OpenVINO's CPU are present);
rankings that need a GPU or a given history use detection records and history rows shaped
as the backends and the matrix write them.
"""

from __future__ import annotations

import json

import pytest

from conftest import cpu_record, cuda_records, detection_of, record_result, run_cli
from hwaccel.errors import UsageError
from hwaccel.estimates.recommend import recommend_devices, recommend_models
from hwaccel.estimates.resources import Estimator
from hwaccel.hardware.detection import detect

# every detected backend but the web one, whose runtime baselines take minutes to measure
# (a browser per job; tests/test_backend_web.py covers it)
NOT_WEB = ("--backend", "cpu", "openvino", "cuda", "rocm", "mps", "qnn")
OPENVINO_CPU = dict(backend="openvino", device="CPU", plugin="openvino",
                    converted_weights="fp32")


def _estimator(plugins, db, *hardware) -> Estimator:
    return Estimator(plugins, detection_of(*hardware), db_path=db, measure=False)


def test_recommend_names_a_detected_device_and_its_reason(plugins, tmp_path):
    proc = run_cli("recommend", "tiny:bert", *NOT_WEB, "--db", str(tmp_path / "db.duckdb"),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    available = {f"{h.backend}:{h.device}" if h.backend != h.device else h.device
                 for h in detect(plugins).hardware if h.available}
    best = result["recommended"]
    assert best["device"] in available and best["estimate"]["fits"] is True
    assert best["reason"].startswith("not measured for this model yet: ranked by device "
                                     "priority (cuda, rocm, mps, openvino, others, cpu)")
    rejected = {r["device"]: r["reason"] for r in result["rejected"]}
    assert rejected["cuda"].startswith("cuda: absent — ")
    assert result["hardware_profile"]["cpu"]["compatible"] is True
    text = run_cli("recommend", "tiny:bert", *NOT_WEB, "--db", str(tmp_path / "db.duckdb"))
    assert text.returncode == 0 and f"run it on {best['device']}" in text.stdout


def test_the_device_the_history_measured_fastest_is_recommended(plugins, tmp_path):
    db = tmp_path / "history.duckdb"
    report = detect(plugins)
    cpu = report.available("cpu")[0]
    openvino = report.available("openvino")[0]
    record_result(db, plugins, "tiny:bert", cpu, p50_ms=1.6)
    record_result(db, plugins, "tiny:bert", openvino, p50_ms=0.6)
    proc = run_cli("recommend", "tiny:bert", *NOT_WEB, "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert [c["device"] for c in result["ranked"]] == ["openvino:CPU", "cpu"]
    assert result["recommended"]["reason"].startswith("measured p50 0.600 ms (run run-1")
    record_result(db, plugins, "tiny:bert", cpu, p50_ms=0.4, run_id="run-2")  # cpu got faster
    (again,) = json.loads(run_cli("recommend", "tiny:bert", *NOT_WEB, "--db", str(db),
                                  "--json").stdout)
    assert again["recommended"]["device"] == "cpu"
    assert again["recommended"]["reason"].startswith("measured p50 0.400 ms (run run-2")


def test_a_device_whose_free_memory_is_below_the_estimate_is_never_recommended(plugins,
                                                                               tmp_path):
    db = tmp_path / "history.duckdb"
    small, large = cuda_records([2000, 30000])
    model = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"  # 4.1 GiB of fp32 weights
    for gpu in (small, large):
        record_result(db, plugins, "tiny:gpt2", gpu, peak_mb=900.0, device_peak_mb=40.0)
        record_result(db, plugins, "minilm", gpu, peak_mb=1000.0, device_peak_mb=130.0)
    estimator = Estimator(plugins, detection_of(cpu_record(memory_available_bytes=64 * 2**30,
                                                           memory_total_bytes=64 * 2**30),
                                                small, large), db_path=db, measure=False)
    record_result(db, plugins, model, small, p50_ms=1.0)  # measured fastest, where it once fit
    record_result(db, plugins, model, large, p50_ms=3.0)
    result = recommend_devices(model, estimator, backends=["cuda"])
    assert [c.device for c in result.ranked] == ["cuda:1"]
    (rejected,) = [r for r in result.rejected if r.device == "cuda:0"]
    assert rejected.reason.startswith("estimate exceeds its free memory: needs ")
    assert rejected.reason.endswith("MiB of device memory, 2,000 MiB free")


def test_a_model_too_big_for_every_device_gets_no_recommendation(tmp_path):
    proc = run_cli("recommend", "mistralai/Mixtral-8x7B-v0.1", "--backend", "cpu", "--db",
                   str(tmp_path / "db.duckdb"))
    assert proc.returncode == 1, proc.stderr
    assert "no detected device can run it" in proc.stdout
    assert "MiB of memory in all" in proc.stdout  # above the total: it can never run here


def test_a_failure_in_the_history_rules_its_device_out(plugins, tmp_path):
    db = tmp_path / "history.duckdb"
    cpu, openvino = cpu_record(), cpu_record(**OPENVINO_CPU)
    record_result(db, plugins, "tiny:mamba", openvino, category="test-failed",
                  error="generated test failed: the state-space cache is not available on "
                        "OpenVINO", run_id="matrix-1")
    result = recommend_devices("tiny:mamba", _estimator(plugins, db, cpu, openvino))
    assert [c.device for c in result.ranked] == ["cpu"]
    (rejected,) = [r for r in result.rejected if r.device == "openvino:CPU"]
    assert rejected.reason.startswith("failed in the history (run matrix-1): test-failed: "
                                      "generated test failed")
    profile = result.support["openvino"]
    assert profile.compatible is False and profile.declared is True
    assert profile.measured == {"openvino:CPU": f"fail: {rejected.reason.split(': ', 1)[1]}"}


def test_declared_support_names_the_plugins_that_compose(plugins):
    estimator = _estimator(plugins, None, cpu_record())
    result = recommend_devices("tiny:UNet2DConditionModel", estimator)
    assert result.best.device == "cpu" and result.support["cpu"].declared is True
    unknown = recommend_devices("tiny:bert", estimator)
    assert unknown.support["cpu"].reasons[0].startswith("declared: pipeline 'text'")
    with pytest.raises(UsageError, match="unknown backend 'tpu'"):
        recommend_devices("tiny:bert", estimator, backends=["tpu"])


def test_models_for_a_task_come_from_the_cache_then_the_catalogue(plugins, tmp_path,
                                                                  monkeypatch):
    from hwaccel.kit.tiny import tiny_config

    hub = tmp_path / "hub"
    snapshot = hub / "models--acme--tiny-chat" / "snapshots" / "abc123"
    tiny_config("gpt2").save_pretrained(snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    estimator = _estimator(plugins, None, cpu_record())
    found = recommend_models("text-generation", estimator)
    sources = {rec.model: source for source, rec in found}
    assert found[0][1].model == "acme/tiny-chat" and found[0][0] == "hf-cache"
    assert sources["openai-community/gpt2"] == "catalogue of text"
    assert sources["mistralai/Mixtral-8x7B-v0.1"] == "catalogue of moe"
    assert "google-bert/bert-base-uncased" not in sources  # fill-mask, not generation
    mixtral = next(rec for _, rec in found if rec.model == "mistralai/Mixtral-8x7B-v0.1")
    assert mixtral.best is None
    assert mixtral.rejected[-1].reason.startswith("estimate exceeds its free memory: the "
                                                  "weights alone need")
    masks = {rec.model for _, rec in recommend_models("fill-mask", estimator)}
    assert "google-bert/bert-base-uncased" in masks and "acme/tiny-chat" not in masks
    with pytest.raises(UsageError, match="unknown task 'tea-making'"):
        recommend_models("tea-making", estimator)


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "tea-making"], "unknown task 'tea-making'"),
    ([], "name a MODEL (or several), or --task TASK, not both"),
    (["tiny:bert", "--task", "fill-mask"], "not both"),
    (["tiny:nosuchtype"], "unknown tiny model type 'nosuchtype'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_cli("recommend", *args, "--no-measure")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hwaccel: error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_constraint_to_an_absent_backend_rejects_with_its_reason(tmp_path):
    proc = run_cli("recommend", "--task", "fill-mask", "--hw", "cuda", "--no-measure",
                   "--db", str(tmp_path / "db.duckdb"), "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["hardware_constraints"] == ["cuda"] and data["recommendations"]
    for entry in data["recommendations"]:
        assert entry["recommended"] is None
        assert entry["rejected"][0]["reason"].startswith("cuda: absent — ")


def test_another_machines_failure_does_not_rule_out_this_machines_device(plugins, tmp_path):
    db = tmp_path / "history.duckdb"
    here, elsewhere = cpu_record(**OPENVINO_CPU), cpu_record(**OPENVINO_CPU, name="other CPU")
    record_result(db, plugins, "tiny:bert", elsewhere, category="crash", error="SIGSEGV")
    record_result(db, plugins, "tiny:bert", elsewhere, p50_ms=0.1, run_id="run-2")
    result = recommend_devices("tiny:bert", _estimator(plugins, db, cpu_record(), here))
    assert result.support["openvino"].ruled_out == {}
    assert [c.p50_ms for c in result.ranked] == [None, None]  # nothing measured here
    record_result(db, plugins, "tiny:bert", here, category="crash", error="SIGSEGV",
                  run_id="run-3")
    again = recommend_devices("tiny:bert", _estimator(plugins, db, cpu_record(), here))
    assert list(again.support["openvino"].ruled_out) == ["openvino:CPU"]


def test_a_simulator_of_a_device_is_never_recommended_even_when_it_measured_fastest(plugins,
                                                                                   tmp_path):
    db = tmp_path / "history.duckdb"
    report = detect(plugins)
    cpu = report.available("cpu")[0]
    (htp,) = report.available("qnn")  # Qualcomm's HTP simulator on this x86_64 CPU
    assert htp.details["simulator"] is True
    record_result(db, plugins, "tiny:bert", cpu, p50_ms=1.6)
    record_result(db, plugins, "tiny:bert", htp, p50_ms=0.2,
                  details={"latency_simulated": True, "latency_of": "the simulator"})
    proc = run_cli("recommend", "tiny:bert", *NOT_WEB, "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert "qnn:htp" not in [c["device"] for c in result["ranked"]]
    assert result["recommended"]["device"] != "qnn:htp"
    rejected = {r["device"]: r["reason"] for r in result["rejected"]}
    assert "is a simulator of that hardware" in rejected["qnn:htp"]
