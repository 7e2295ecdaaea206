"""Hooks are called through pluggy: tracing, firstresult and attribution per plugin."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from conftest import make_plugin_dist, run_cli
from hwaccel.errors import PluginHookError
from hwaccel.plugins import Plugins, load_plugins, make_plugin_manager

# Two backends that both answer every benchmark request, and count their calls.
ANSWERING = """
    from hwaccel import BenchmarkResult, hookimpl

    CALLS = []

    @hookimpl
    def hwaccel_benchmark(request):
        CALLS.append(request.model)
        return BenchmarkResult(model=request.model, backend="{name}", device="{name}",
                               success=True)
"""
RAISING_INFO = """
    from hwaccel import hookimpl

    @hookimpl
    def hwaccel_pipeline_info():
        raise ValueError("info exploded")
"""
GOOD_INFO = """
    from hwaccel import PipelineInfo, hookimpl

    @hookimpl
    def hwaccel_pipeline_info():
        return PipelineInfo(name="okpipe")
"""


def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             sources: dict[str, str]) -> Plugins:
    """Load one single-module distribution per ``sources`` entry (plugin id -> source)."""
    eps = []
    for name, source in sources.items():
        module = f"hwaccel_dispatch_{name}"
        root = make_plugin_dist(tmp_path / name, f"hwaccel-dispatch-{name}", {name: module},
                                {f"{module}.py": source.replace("{name}", name)})
        monkeypatch.syspath_prepend(str(root))
        for dist in importlib.metadata.distributions(path=[str(root)]):
            eps.extend(ep for ep in dist.entry_points if ep.group == "hwaccel")
    pm = make_plugin_manager()
    return Plugins(pm, load_plugins(pm, strict=False, entry_points=eps))


def _request():
    from hwaccel import BenchmarkRequest, Classification, HardwareInfo

    hardware = HardwareInfo(backend="first", device="first", name="x", available=True)
    return BenchmarkRequest(model="m", hardware=hardware,
                            classification=Classification(model="m", family="unknown"))


def test_a_firstresult_hook_stops_at_the_first_answer(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"first": ANSWERING, "second": ANSWERING})
    results, errors = plugins.call_each("hwaccel_benchmark", request=_request())
    assert errors == [] and len(results) == 1
    calls = [__import__(f"hwaccel_dispatch_{n}").CALLS for n in ("first", "second")]
    assert sorted(len(c) for c in calls) == [0, 1]  # pluggy never asked the second one
    plugin, result = results[0]
    assert result.plugin == plugin and result.distribution == f"hwaccel-dispatch-{plugin}"


def test_a_raising_hook_is_its_plugins_error_and_the_others_answer(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"bad": RAISING_INFO, "good": GOOD_INFO})
    results, errors = plugins.call_each("hwaccel_pipeline_info")
    assert [(p, info.name) for p, info in results] == [("good", "okpipe")]
    assert [(e.plugin, e.hook) for e in errors] == [("bad", "hwaccel_pipeline_info")]
    assert "ValueError: info exploded" in errors[0].message


def test_strict_mode_raises_on_a_hook_error(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"bad": RAISING_INFO, "good": GOOD_INFO})
    monkeypatch.setenv("HWACCEL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginHookError, match="plugin 'bad' failed in hwaccel_pipeline_info"):
        plugins.call_each("hwaccel_pipeline_info")


def test_a_hook_called_around_the_guard_still_names_its_plugin(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"bad": RAISING_INFO})
    with pytest.raises(PluginHookError, match="plugin 'bad'"):
        plugins.pm.hook.hwaccel_pipeline_info()


def test_tracing_prints_every_hook_call():
    proc = run_cli("classify", "tiny:bert", env={"HWACCEL_TRACE_PLUGINS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "hwaccel_classify [hook]" in proc.stderr
    assert "finish hwaccel_classify --> [text: Classification(" in proc.stderr


# A backend whose detection raises: known by its declaration, never "unknown".
FAILING_DETECTOR = """
    from hwaccel import BackendInfo, hookimpl

    @hookimpl
    def hwaccel_backend_info():
        return BackendInfo(name="brokenhw", advice="needs a brokenhw board")

    @hookimpl
    def hwaccel_detect():
        raise RuntimeError("driver handshake failed")
"""


@pytest.fixture
def broken_backend_env(tmp_path):
    from conftest import pythonpath_env

    root = make_plugin_dist(tmp_path / "dist", "hwaccel-brokenhw",
                            {"brokenhw": "hwaccel_brokenhw"},
                            {"hwaccel_brokenhw.py": FAILING_DETECTOR})
    return {**pythonpath_env(root), "HWACCEL_CACHE_DIR": str(tmp_path / "cache"),
            "HWACCEL_LOAD_PLUGINS": "brokenhw,cpu,text"}


def test_benchmark_on_a_backend_whose_detection_raised_names_the_error(
        broken_backend_env, tmp_path):
    import json

    proc = run_cli("benchmark", "tiny:bert", "--backend", "brokenhw", "--json",
                   "--db", str(tmp_path / "h.duckdb"), env=broken_backend_env)
    assert "unknown backend" not in proc.stderr
    rows = json.loads(proc.stdout)["results"]
    assert [(r["backend"], r["success"], r["error_category"]) for r in rows] == [
        ("brokenhw", False, "detection-failed")]
    assert "driver handshake failed" in rows[0]["error"]


def test_the_matrix_records_that_backends_cells_as_not_tested(broken_backend_env, tmp_path):
    import json

    db = tmp_path / "m.duckdb"
    proc = run_cli("matrix", "--models", "tiny:bert", "--backends", "brokenhw", "cpu",
                   "--db", str(db), "--tests-dir", str(tmp_path / "t"), "--json",
                   env=broken_backend_env)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(run_cli("report", "--db", str(db), "--json",
                                env=broken_backend_env).stdout)
    cells = {c["backend"]: c for c in report["cells"]}
    assert cells["brokenhw"]["status"] == "not-tested"
    assert "driver handshake failed" in cells["brokenhw"]["reason"]
    assert cells["cpu"]["status"] == "pass"
