"""The plugin loader: statuses, graded errors, env controls, isolated hook calls."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from conftest import make_plugin_dist, pythonpath_env, run_cli
from hwaccel.errors import PluginLoadError
from hwaccel.plugins import Plugins, load, load_plugins, make_plugin_manager

GOOD_BACKEND = """
    from hwaccel import HardwareInfo, hookimpl

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="goodhw", device="goodhw:0", name="Good", available=True)]
"""
BROKEN = {
    "import-error": ("boom", "hwaccel_test_boom.py", "raise RuntimeError('broken at import')\n"),
    "missing-sdk": ("nosdk", "hwaccel_test_nosdk.py", "import vendor_sdk_that_is_absent\n"),
    "raising-hook": ("raiser", "hwaccel_test_raiser.py", """
        from hwaccel import hookimpl

        @hookimpl
        def hwaccel_detect():
            raise RuntimeError("detector exploded")
    """),
    "misspelled-hook": ("typo", "hwaccel_test_typo.py", """
        from hwaccel import hookimpl

        @hookimpl
        def hwaccel_detetc():
            return []
    """),
    "default-arg": ("defaults", "hwaccel_test_defaults.py", """
        from hwaccel import hookimpl

        @hookimpl
        def hwaccel_template(backend, pipeline="text"):
            return None
    """),
    "unknown-arg": ("extraarg", "hwaccel_test_extraarg.py", """
        from hwaccel import hookimpl

        @hookimpl
        def hwaccel_detect(device_count):
            return []
    """),
    "wrong-return": ("wrongret", "hwaccel_test_wrongret.py", """
        from hwaccel import hookimpl

        @hookimpl
        def hwaccel_detect():
            return {"cpu": True}
    """),
}


def _dist(tmp_path: Path, key: str) -> Path:
    ep_name, module_file, source = BROKEN[key]
    return make_plugin_dist(tmp_path / key, f"hwaccel-test-{key}",
                            {ep_name: module_file.removesuffix(".py")}, {module_file: source})


def _entry_points(root: Path) -> list[importlib.metadata.EntryPoint]:
    eps = []
    for dist in importlib.metadata.distributions(path=[str(root)]):
        eps.extend(ep for ep in dist.entry_points if ep.group == "hwaccel")
    return eps


def _load(monkeypatch: pytest.MonkeyPatch, *roots: Path, strict: bool = False) -> Plugins:
    for root in roots:
        monkeypatch.syspath_prepend(str(root))
    pm = make_plugin_manager()
    eps = [ep for root in roots for ep in _entry_points(root)]
    return Plugins(pm, load_plugins(pm, strict=strict, entry_points=eps))


def _status(plugins: Plugins) -> dict[str, tuple[str, str | None]]:
    return {r.name: (r.status, r.error) for r in plugins.records}


def test_first_party_plugins_load_with_their_kind_and_hooks():
    records = {r.name: r for r in load(strict=True).records}
    assert records["cpu"].status == "loaded" and records["cpu"].kind == "backend"
    assert set(records["cpu"].hooks) == {"hwaccel_backend_info", "hwaccel_detect",
                                         "hwaccel_template", "hwaccel_benchmark"}
    assert records["cpu"].distribution == "hwaccel-cpu"
    assert records["text"].status == "loaded" and records["text"].kind == "pipeline"
    assert set(records["text"].hooks) == {"hwaccel_pipeline_info", "hwaccel_classify",
                                          "hwaccel_template"}


@pytest.mark.parametrize("key, status, message", [
    ("import-error", "failed", "broken at import"),
    ("missing-sdk", "unavailable", "vendor_sdk_that_is_absent"),
    ("misspelled-hook", "failed", "unknown hook 'hwaccel_detetc'"),
    ("default-arg", "failed", "default"),
    ("unknown-arg", "failed", "device_count"),
])
def test_broken_plugin_gets_a_status_and_the_good_one_still_loads(
        tmp_path, monkeypatch, key, status, message):
    good = make_plugin_dist(tmp_path / "good", "hwaccel-test-good",
                            {"goodhw": "hwaccel_test_good"},
                            {"hwaccel_test_good.py": GOOD_BACKEND})
    plugins = _load(monkeypatch, good, _dist(tmp_path, key))
    statuses = _status(plugins)
    name = BROKEN[key][0]
    assert statuses[name][0] == status
    assert message in statuses[name][1]
    assert statuses["goodhw"] == ("loaded", None)
    results, errors = plugins.call_each("hwaccel_detect")
    assert [p for p, _ in results] == ["goodhw"]
    assert errors == []


@pytest.mark.parametrize("key, message", [("raising-hook", "detector exploded"),
                                          ("wrong-return", "must return a list")])
def test_a_failing_hook_is_attributed_to_its_plugin_and_others_answer(
        tmp_path, monkeypatch, key, message):
    good = make_plugin_dist(tmp_path / "good", "hwaccel-test-good",
                            {"goodhw": "hwaccel_test_good"},
                            {"hwaccel_test_good.py": GOOD_BACKEND})
    plugins = _load(monkeypatch, good, _dist(tmp_path, key))
    results, errors = plugins.call_each("hwaccel_detect")
    assert [(p, [h.device for h in infos]) for p, infos in results] == [
        ("goodhw", ["goodhw:0"])]
    assert len(errors) == 1
    assert errors[0].plugin == BROKEN[key][0] and message in errors[0].message


def test_results_are_stamped_with_provenance_by_the_core(tmp_path, monkeypatch):
    good = make_plugin_dist(tmp_path / "good", "hwaccel-test-good",
                            {"goodhw": "hwaccel_test_good"},
                            {"hwaccel_test_good.py": GOOD_BACKEND})
    (info,) = _load(monkeypatch, good).call_each("hwaccel_detect")[0][0][1]
    assert (info.plugin, info.distribution, info.distribution_version) == (
        "goodhw", "hwaccel-test-good", "0.0.1")


def test_same_entry_point_name_from_two_distributions_is_a_conflict(tmp_path, monkeypatch):
    first = make_plugin_dist(tmp_path / "a", "hwaccel-test-a", {"goodhw": "hwaccel_test_a"},
                             {"hwaccel_test_a.py": GOOD_BACKEND})
    second = make_plugin_dist(tmp_path / "b", "hwaccel-test-b", {"goodhw": "hwaccel_test_b"},
                              {"hwaccel_test_b.py": GOOD_BACKEND})
    records = _load(monkeypatch, first, second).records
    assert [(r.distribution, r.status) for r in records] == [
        ("hwaccel-test-a", "loaded"), ("hwaccel-test-b", "failed")]
    assert "name conflict" in records[1].error


def test_strict_mode_raises_on_the_first_failure(tmp_path, monkeypatch):
    with pytest.raises(PluginLoadError, match="broken at import"):
        _load(monkeypatch, _dist(tmp_path, "import-error"), strict=True)


@pytest.mark.parametrize("env, expected", [
    ({"HWACCEL_LOAD_PLUGINS": ""}, {"cpu": "disabled", "text": "disabled"}),
    ({"HWACCEL_LOAD_PLUGINS": "cpu"}, {"cpu": "loaded", "text": "disabled"}),
    ({"HWACCEL_LOAD_PLUGINS": "hwaccel-pipeline-text"}, {"cpu": "disabled", "text": "loaded"}),
    ({"HWACCEL_DISABLE_PLUGINS": "text"}, {"cpu": "loaded", "text": "disabled"}),
])
def test_environment_allow_and_block_lists(monkeypatch, env, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    statuses = {r.name: r.status for r in load().records}
    assert {name: statuses[name] for name in expected} == expected


def test_list_plugins_cli_shows_broken_plugins_as_failed_and_keeps_working(tmp_path):
    roots = [_dist(tmp_path, key) for key in ("import-error", "raising-hook",
                                              "misspelled-hook", "missing-sdk")]
    proc = run_cli("list-plugins", "--json", env=pythonpath_env(*roots))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1  # some plugin failed
    statuses = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert statuses["cpu"] == statuses["text"] == statuses["raiser"] == "loaded"
    assert statuses["boom"] == statuses["typo"] == "failed"
    assert statuses["nosdk"] == "unavailable"
    detect = run_cli("detect", "--refresh", "--json", env=pythonpath_env(*roots))
    assert detect.returncode == 0, detect.stderr
    report = json.loads(detect.stdout)
    available = {h["backend"] for h in report["hardware"] if h["available"]}
    assert "cpu" in available and "raiser" not in available
    assert {h["backend"] for h in report["hardware"]} >= {"cpu", "cuda", "rocm", "mps", "qnn"}
    assert report["errors"][0]["plugin"] == "raiser"
    assert "detector exploded" in detect.stderr


def test_strict_plugins_flag_fails_with_one_line(tmp_path):
    root = _dist(tmp_path, "import-error")
    proc = run_cli("--strict-plugins", "list-plugins", env=pythonpath_env(root))
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "hwaccel: error: plugin 'boom' (hwaccel-test-import-error): "
        "RuntimeError: broken at import"]


def test_every_hook_is_documented_with_its_signature():
    """Each hookspec has a full docstring and appears in the plugin authors' reference
    (docs/plugin-authors.md) with its exact signature."""
    readme = (Path(__file__).parent.parent / "docs" / "plugin-authors.md").read_text(
        encoding="utf-8")
    pm = make_plugin_manager()
    for name in ("hwaccel_backend_info", "hwaccel_detect", "hwaccel_benchmark",
                 "hwaccel_pipeline_info", "hwaccel_classify", "hwaccel_template"):
        caller = getattr(pm.hook, name)
        signature = f"{name}({', '.join(caller.spec.argnames)})"
        assert f"`{signature}`" in readme, signature
        doc = caller.spec.function.__doc__ or ""
        for part in ("Called", ":returns:", "How results combine:"):
            assert part in doc, (name, part)
