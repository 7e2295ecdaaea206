"""The compatibility reporter: findings from real plugins, detection, history rows and jobs."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from conftest import ONE_THREAD, cpu_record, detection_of, make_plugin_dist
from hwaccel.compat.compatibility import (
    LOW_MEMORY_FRACTION,
    RECOMMENDATIONS,
    SEVERITIES,
    CompatibilityError,
    HardwareCompatibilityReporter,
)
from hwaccel.errors import HwaccelError, ModelReferenceError, UsageError
from hwaccel.hardware.detection import detect
from hwaccel.hardware.devices import HardwareDetector
from hwaccel.history.store import Store
from hwaccel.models.classify import classify
from hwaccel.models.resolve import resolve_model
from hwaccel.plugins import Plugins, load, load_plugins, make_plugin_manager
from hwaccel.types import BenchmarkResult

BROKEN_IMPORT = "raise RuntimeError('broken at import')\n"
MISSING_SDK = "import vendor_sdk_that_is_absent\n"
RAISING_TEMPLATE = """
    from hwaccel import hookimpl

    @hookimpl
    def hwaccel_template(backend):
        raise RuntimeError("template exploded")
"""
# A backend with a device whose free memory is just under the threshold and one just at it,
# plus a detector that raises: what the reporter makes of a plugin's detection.
MEMORY_BACKEND = f"""
    from hwaccel import HardwareInfo, hookimpl

    @hookimpl
    def hwaccel_detect():
        total = 1000
        return [HardwareInfo(backend="memhw", device=f"memhw:{{i}}", name="Mem", index=i,
                             available=True, memory_total_bytes=total,
                             memory_available_bytes=free)
                for i, free in enumerate([int(total * {LOW_MEMORY_FRACTION}) - 1,
                                          int(total * {LOW_MEMORY_FRACTION})])]
"""
RAISING_DETECT = """
    from hwaccel import hookimpl

    @hookimpl
    def hwaccel_detect():
        raise RuntimeError("detector exploded")
"""
# A present backend whose template snippets lack the slots a pipeline needs beyond imports.
HALF_BACKEND = """
    from hwaccel import HardwareInfo, TemplatePart, hookimpl

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="halfhw", device="halfhw:0", name="Half", available=True)]

    @hookimpl
    def hwaccel_template(backend):
        if backend == "halfhw":
            return TemplatePart(owner="backend", name="halfhw", snippets={"imports": ""})
        return None
"""
BARE_BACKEND = """
    from hwaccel import HardwareInfo, hookimpl

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="barehw", device="barehw:0", name="Bare", available=True)]
"""


def _dist(root: Path, name: str, source: str) -> Path:
    module = f"hwaccel_test_{name}"
    return make_plugin_dist(root / name, f"hwaccel-test-{name}", {name: module},
                            {f"{module}.py": source})


def _installed_plus(monkeypatch: pytest.MonkeyPatch, *roots: Path) -> Plugins:
    """The installed plugins plus the test distributions in ``roots``, found as entry points."""
    for root in roots:
        monkeypatch.syspath_prepend(str(root))
    return load()


def _only(monkeypatch: pytest.MonkeyPatch, *roots: Path) -> Plugins:
    """Only the test distributions in ``roots``, none of the installed plugins."""
    for root in roots:
        monkeypatch.syspath_prepend(str(root))
    eps = [ep for dist in importlib.metadata.distributions(path=[str(r) for r in roots])
           for ep in dist.entry_points if ep.group == "hwaccel"]
    pm = make_plugin_manager()
    return Plugins(pm, load_plugins(pm, strict=False, entry_points=eps))


def _of_type(errors: list[CompatibilityError], error_type: str) -> list[CompatibilityError]:
    return [e for e in errors if e.error_type == error_type]


def _insert(db: Path, plugins: Plugins, model: str, backend: str, device: str, *,
            category: str | None = None, error: str | None = None,
            run_id: str = "run-1") -> None:
    """Store one benchmark outcome through the real store (a failure when ``category``)."""
    classification = classify(model, plugins).classification
    result = BenchmarkResult(model=model, backend=backend, device=device,
                             success=category is None, error_category=category, error=error,
                             p50_ms=None if category else 1.5, mean_ms=None if category else 1.6)
    with Store(db) as store:
        store.insert_result(result, classification, run_id)


def test_broken_plugins_are_errors_with_advice_and_the_rest_still_load(tmp_path, monkeypatch):
    plugins = _installed_plus(monkeypatch, _dist(tmp_path, "boom", BROKEN_IMPORT),
                              _dist(tmp_path, "nosdk", MISSING_SDK))
    found = HardwareCompatibilityReporter(plugins).check_components()
    (failed,) = _of_type(found, "plugin_load")
    assert (failed.severity, failed.details["plugin"]) == ("error", "boom")
    assert "broken at import" in failed.message
    assert failed.recommendations == RECOMMENDATIONS["plugin_load"]
    (missing,) = _of_type(found, "plugin_dependency")
    assert "vendor_sdk_that_is_absent" in missing.message and missing.recommendations
    assert not [e for e in found if e.severity == "critical"]  # the installed plugins loaded


def test_no_backend_and_no_pipeline_plugin_is_critical(tmp_path, monkeypatch):
    plugins = _only(monkeypatch, _dist(tmp_path, "openvino", BROKEN_IMPORT))
    found = HardwareCompatibilityReporter(plugins, refresh=True).check_components()
    critical = {e.error_type for e in found if e.severity == "critical"}
    assert critical == {"no_backend_plugin", "no_pipeline_plugin"}
    assert all(e.recommendations for e in found)
    (failed,) = _of_type(found, "plugin_load")
    extras = importlib.metadata.metadata("hwaccel").get_all("Provides-Extra")
    assert "openvino" in extras and failed.hardware == "openvino"
    assert any("pip install 'hwaccel[openvino]'" in advice for advice in failed.recommendations)


def test_a_disabled_plugin_is_info(monkeypatch):
    monkeypatch.setenv("HWACCEL_DISABLE_PLUGINS", "mps")
    found = HardwareCompatibilityReporter(load()).check_components()
    assert [(e.severity, e.details["plugin"]) for e in _of_type(found, "plugin_disabled")] == [
        ("info", "mps")]


def test_a_raising_template_hook_is_an_error_naming_its_plugin(tmp_path, monkeypatch):
    plugins = _installed_plus(monkeypatch, _dist(tmp_path, "tplboom", RAISING_TEMPLATE))
    found = HardwareCompatibilityReporter(plugins).check_components()
    (hook,) = _of_type(found, "hook_failed")
    assert hook.details == {"plugin": "tplboom", "hook": "hwaccel_template"}
    assert "template exploded" in hook.message and hook.severity == "error"


def test_absent_backends_are_info_with_their_own_reason(plugins):
    report = detect(plugins)
    present = {h.backend for h in report.hardware if h.available}
    absent = {h.backend: h.reason for h in report.hardware
              if not h.available and h.backend not in present}
    assert "cuda" in absent  # this machine has no CUDA: the real plugin says why
    found = HardwareCompatibilityReporter(plugins).collect_hardware_detection_errors()
    infos = {e.hardware: e for e in _of_type(found, "backend_absent")}
    assert set(infos) == set(absent)
    cuda = infos["cuda"]
    assert cuda.severity == "info" and absent["cuda"] in cuda.message
    assert cuda.details["reason"] == absent["cuda"]
    assert any("CUDA" in advice for advice in cuda.recommendations)
    assert not {h.backend for h in report.hardware if h.available} & set(infos)
    partly = {(h.backend, h.device) for h in report.hardware if not h.available
              and h.backend in {a.backend for a in report.hardware if a.available}}
    devices = _of_type(found, "device_unavailable")
    assert {(e.hardware, e.details["device"]) for e in devices} == partly
    for finding in devices:  # web:webnn when the browser refuses WebNN
        assert finding.message.startswith(f"{finding.hardware}:{finding.details['device']} "
                                          "is absent: ")


def test_detection_errors_and_low_free_memory(tmp_path, monkeypatch):
    plugins = _only(monkeypatch, _dist(tmp_path, "memhw", MEMORY_BACKEND),
                    _dist(tmp_path, "raiser", RAISING_DETECT))
    found = HardwareCompatibilityReporter(plugins, refresh=True).collect_hardware_detection_errors()
    (failed,) = _of_type(found, "detection_failed")
    assert (failed.severity, failed.hardware) == ("error", "raiser")
    assert "detector exploded" in failed.message
    (low,) = _of_type(found, "memory_pressure")
    devices = {h.device: h for h in detect(plugins).hardware}
    tight = devices[low.details["device"]]
    assert low.severity == "warning"
    assert tight.memory_available_bytes < LOW_MEMORY_FRACTION * tight.memory_total_bytes
    roomy = [h for h in devices.values() if h.device != tight.device]
    assert roomy and all(h.memory_available_bytes >= LOW_MEMORY_FRACTION * h.memory_total_bytes
                         for h in roomy)


def test_a_bad_model_id_is_model_unresolved_with_the_resolvers_message(plugins):
    bad = "not a model!"
    with pytest.raises(ModelReferenceError) as raised:
        resolve_model(bad)
    found = HardwareCompatibilityReporter(plugins).collect_model_integration_errors(bad)
    (error,) = found
    assert (error.severity, error.error_type) == ("error", "model_unresolved")
    assert error.message == str(raised.value) and error.recommendations


def test_an_unclassified_model_is_a_warning_with_the_classifiers_reason(plugins, tmp_path):
    folder = tmp_path / "made-up"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["MadeUpModel"]}))
    reason = classify(str(folder), plugins).classification.reason
    found = HardwareCompatibilityReporter(plugins).collect_model_integration_errors(str(folder))
    # a config without weights is also a model that cannot run: both are said
    assert sorted((f.severity, f.error_type) for f in found) == [
        ("warning", "model_unavailable"), ("warning", "model_unclassified")]
    (warning,) = [f for f in found if f.error_type == "model_unclassified"]
    assert reason in warning.message


def test_backends_missing_template_parts_are_errors_and_missing_in_the_matrix(
        tmp_path, monkeypatch):
    plugins = _installed_plus(monkeypatch, _dist(tmp_path, "halfhw", HALF_BACKEND),
                              _dist(tmp_path, "barehw", BARE_BACKEND))
    reporter = HardwareCompatibilityReporter(plugins, refresh=True)
    found = reporter.collect_model_integration_errors("tiny:bert")
    assert sorted((e.hardware, e.error_type, e.severity) for e in found) == [
        ("barehw", "missing_template", "error"), ("halfhw", "missing_template", "error")]
    messages = {e.hardware: e.message for e in found}
    assert "'cleanup'" in messages["halfhw"] and "no loaded plugin" in messages["barehw"]
    matrix = reporter.generate_compatibility_matrix()
    assert matrix["source"] == "templates" and "no history database" in matrix["note"]
    text = next(row["entries"] for row in matrix["rows"] if row["pipeline"] == "text")
    assert text["halfhw"]["status"] == text["barehw"]["status"] == "missing"
    assert text["cpu"] == {"status": "ready", "reason": None}
    cuda_reason = next(h.reason for h in reporter.detection().hardware if h.backend == "cuda")
    assert text["cuda"] == {"status": "template-only", "reason": cuda_reason}
    pipelines = {r.name for r in plugins.loaded() if r.kind == "pipeline"}
    assert {row["pipeline"] for row in matrix["rows"]} == pipelines


def test_an_oom_row_is_memory_pressure_and_only_the_latest_row_counts(plugins, tmp_db):
    _insert(tmp_db, plugins, "tiny:gpt2", "cpu", "cpu", category="oom", error="killed at 512 MiB")
    _insert(tmp_db, plugins, "tiny:bert", "cpu", "cpu", category="killed", error="SIGKILL")
    _insert(tmp_db, plugins, "tiny:t5", "cpu", "cpu", category="timeout", error="60 s")
    _insert(tmp_db, plugins, "tiny:bert", "cpu", "cpu", run_id="run-2")  # later: it ran
    found = HardwareCompatibilityReporter(plugins, tmp_db).collect_resource_pool_errors()
    assert sorted(e.error_type for e in found) == ["memory_pressure"]
    (memory,) = _of_type(found, "memory_pressure")
    assert (memory.severity, memory.hardware) == ("error", "cpu")
    assert memory.details["model_id"] == "tiny:gpt2" and "killed at 512 MiB" in memory.message


def test_a_failed_construction_in_the_resource_pool_is_an_error_finding(plugins, monkeypatch):
    from hwaccel.compat import resource_pool
    pool = resource_pool.ResourcePool(detector=HardwareDetector(detection_of(cpu_record())))
    monkeypatch.setattr(resource_pool, "_GLOBAL", pool)

    def broken() -> None:
        raise RuntimeError("weights are corrupt")

    with pytest.raises(RuntimeError):
        pool.get_model("embedding", "broken-model", constructor=broken)
    (finding,) = HardwareCompatibilityReporter(plugins).collect_resource_pool_errors()
    assert (finding.severity, finding.error_type) == ("error", "resource_pool_construction")
    assert "broken-model" in finding.message and "weights are corrupt" in finding.message


def test_history_failures_of_a_model_and_the_history_matrix(plugins, tmp_db):
    _insert(tmp_db, plugins, "tiny:bert", "cpu", "cpu")
    _insert(tmp_db, plugins, "tiny:bert", "openvino", "CPU", category="conversion", error="no op")
    _insert(tmp_db, plugins, "tiny:bert", "cuda", "cuda", category="unavailable", error="no GPU")
    reporter = HardwareCompatibilityReporter(plugins, tmp_db)
    found = reporter.collect_model_integration_errors("tiny:bert")
    history = {e.hardware: e for e in found if e.details.get("run_id") == "run-1"}
    assert set(history) == {"openvino", "cuda"}
    assert (history["openvino"].severity, history["openvino"].error_type) == (
        "error", "conversion_failed")
    assert (history["cuda"].severity, history["cuda"].error_type) == ("info", "backend_absent")
    matrix = reporter.generate_compatibility_matrix()
    assert matrix["source"] == "history" and matrix["backends"][0] == "cpu"
    (row,) = matrix["rows"]
    assert (row["model_type"], row["pipeline"], row["models"]) == ("bert", "text", ["tiny:bert"])
    assert {b: e["status"] for b, e in row["entries"].items()} == {
        "cpu": "pass", "openvino": "fail", "cuda": "not-tested"}
    assert "no op" in row["entries"]["openvino"]["reason"]


def test_an_unreadable_database_is_one_warning_and_the_matrix_uses_templates(plugins, tmp_path):
    missing = tmp_path / "none.duckdb"
    reporter = HardwareCompatibilityReporter(plugins, missing)
    reporter.collect_resource_pool_errors()
    matrix = reporter.generate_compatibility_matrix()
    (warning,) = _of_type(reporter.errors, "history_unavailable")
    assert warning.severity == "warning" and str(missing) in warning.message
    assert matrix["source"] == "templates" and matrix["note"] == warning.message


def _mixed_reporter(plugins: Plugins) -> HardwareCompatibilityReporter:
    reporter = HardwareCompatibilityReporter(plugins)
    reporter.collect_hardware_detection_errors()  # info: the absent backends
    reporter.collect_model_integration_errors("not a model!")  # error
    return reporter


def test_markdown_has_one_section_per_severity_found(plugins):
    reporter = _mixed_reporter(plugins)
    markdown = reporter.generate_report(format="markdown")
    counts = reporter.summary()
    assert counts["info"] and counts["error"] and not counts["critical"]
    for severity, title in zip(SEVERITIES, ("Critical", "Errors", "Warnings", "Info"),
                               strict=True):
        assert (f"\n## {title} ({counts[severity]})\n" in markdown) == bool(counts[severity])
    errors_section = markdown.split("\n## Errors")[1].split("\n## ")[0]
    for error in reporter.errors:
        assert (error.message in errors_section) == (error.severity == "error")
    assert all(f"- {advice}" in markdown for e in reporter.errors for advice in e.recommendations)


def test_json_report_round_trips(plugins):
    reporter = _mixed_reporter(plugins)
    data = json.loads(reporter.generate_report(format="json"))
    rebuilt = [CompatibilityError(**{**e, "recommendations": tuple(e["recommendations"])})
               for e in data["errors"]]
    assert rebuilt == reporter.errors
    assert data["summary"] == {s: sum(e.severity == s for e in reporter.errors)
                               for s in SEVERITIES}
    assert data["hardware"] == [h.to_dict() for h in reporter.detection().hardware]
    with pytest.raises(UsageError, match="html"):
        reporter.generate_report(format="html")


def test_save_to_file_writes_or_fails_with_one_clear_error(plugins, tmp_path):
    reporter = HardwareCompatibilityReporter(plugins)
    path = reporter.save_to_file("# report\n", tmp_path / "out" / "report.md")
    assert path.read_text(encoding="utf-8") == "# report\n"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(HwaccelError, match="cannot write the report") as raised:
        reporter.save_to_file("x", blocker / "report.md")
    assert "\n" not in str(raised.value)


def test_add_error_refuses_an_unknown_severity(plugins):
    with pytest.raises(ValueError, match="severity"):
        HardwareCompatibilityReporter(plugins).add_error("fatal", "x", "crash", "boom")


@pytest.mark.slow
def test_full_hardware_stack_runs_tiny_bert_on_every_available_device(monkeypatch):
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    # the browser's providers take a minute each here; tests/test_backend_web.py runs them
    monkeypatch.setenv("HWACCEL_DISABLE_PLUGINS", "web")
    reporter = HardwareCompatibilityReporter(load(), timeout_s=60)
    found = reporter.test_full_hardware_stack("tiny:bert")
    available = [h for h in reporter.detection().hardware if h.available]
    assert "cpu" in {h.backend for h in available}
    assert [(e.hardware, e.details["device"]) for e in found] == [
        (h.backend, h.device) for h in available]
    cpu = next(e for e in found if e.hardware == "cpu")
    assert (cpu.severity, cpu.error_type) == ("info", "stack_ok")
    assert cpu.message.startswith("cpu: tiny:bert ran, p50 ")
    assert cpu.details["p50_ms"] > 0
