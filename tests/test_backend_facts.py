"""Backends declare their own facts (``hwaccel_backend_info``) and the core follows them.

A third-party backend here is a real distribution loaded through its entry point next to
the installed ``cpu`` backend; detection runs for real (into a temporary cache file).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from conftest import make_plugin_dist
from hwaccel.compat.resource_pool import release_cached_memory
from hwaccel.estimates.recommend import priority_of
from hwaccel.hardware.backends import backends_of
from hwaccel.hardware.detection import detect
from hwaccel.hardware.devices import default_priority, select_device
from hwaccel.plugins import Plugins, get_plugins, load_plugins, make_plugin_manager

ACME = """
    from hwaccel import BackendInfo, HardwareInfo, hookimpl

    @hookimpl
    def hwaccel_backend_info():
        return BackendInfo(name="acme", priority=5, advice="ACME needs its NPU driver")

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="acme", device="npu0", name="ACME NPU", available=True,
                             device_string="acme:npu0")]
"""
BROKEN = """
    from hwaccel import BackendInfo, hookimpl

    @hookimpl
    def hwaccel_backend_info():
        return BackendInfo(name="broken", priority=7)

    @hookimpl
    def hwaccel_detect():
        raise RuntimeError("driver gone")
"""
TWIN = """
    from hwaccel import BackendInfo, hookimpl

    @hookimpl
    def hwaccel_backend_info():
        return BackendInfo(name="acme", priority=1)
"""
FIRST_PARTY = ("cpu", "cuda", "rocm", "mps", "openvino", "qnn", "web")
DISTRIBUTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: dict[str, str]) -> Plugins:
    """The installed ``cpu`` backend plus one test distribution per ``sources`` entry."""
    eps = [ep for ep in importlib.metadata.entry_points(group="hwaccel") if ep.name == "cpu"]
    for name, source in sources.items():
        module = f"hwaccel_facts_{name}"
        root = make_plugin_dist(tmp_path / name, f"hwaccel-facts-{name}", {name: module},
                                {f"{module}.py": source})
        monkeypatch.syspath_prepend(str(root))
        for dist in importlib.metadata.distributions(path=[str(root)]):
            eps.extend(ep for ep in dist.entry_points if ep.group == "hwaccel")
    pm = make_plugin_manager()
    return Plugins(pm, load_plugins(pm, strict=False, entry_points=eps))


def test_a_third_party_backend_with_priority_5_is_chosen_and_ranked_first(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"acme": ACME})
    report = detect(plugins, path=tmp_path / "detect.json")
    assert default_priority(report) == ("acme", "cpu")
    choice = select_device(report)
    assert (choice.backend, choice.device, choice.fallbacks) == ("acme", "acme:npu0", ())
    assert not choice.is_torch and choice.openvino_device == "npu0"
    assert select_device(report, ["cpu"]).device == "cpu"
    ranked = sorted(report.hardware, key=lambda h: priority_of(h, report.backend_facts()))
    assert [h.backend for h in ranked] == ["acme", "cpu"]
    from hwaccel.compat.compatibility import recommendations_for

    advice = recommendations_for("backend_absent", "acme", report.backend_facts())
    assert advice[-1] == "ACME needs its NPU driver"
    assert "install the plugin that provides it" in recommendations_for(
        "backend_absent", "tpu", report.backend_facts())[-1]


def test_a_backend_whose_detection_raised_is_known_with_its_error(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"broken": BROKEN})
    report = detect(plugins, path=tmp_path / "detect.json")
    assert "driver gone" in report.detection_error("broken")
    assert report.detection_error("cpu") is None
    choice = select_device(report, ["broken"])
    assert choice.backend == "cpu"
    assert choice.fallbacks[0].startswith("broken: detection failed — RuntimeError: driver gone")
    assert choice.fallbacks[1] == ("none of broken has an available device; trying cpu, "
                                   "the last resort")
    assert select_device(report).fallbacks[0].startswith("broken: detection failed")


def test_a_second_declaration_of_a_name_is_refused_and_attributed(tmp_path, monkeypatch):
    plugins = _plugins(tmp_path, monkeypatch, {"acme": ACME, "twin": TWIN})
    facts = backends_of(plugins)
    assert facts.infos["acme"].plugin == "acme" and facts.infos["acme"].priority == 5
    assert [(e.plugin, e.hook) for e in facts.errors] == [("twin", "hwaccel_backend_info")]
    assert "already declared by plugin 'acme'" in facts.errors[0].message
    report = detect(plugins, path=tmp_path / "detect.json")
    assert any(e.plugin == "twin" for e in report.errors)


def test_cache_release_follows_the_device_type(monkeypatch):
    import torch

    released: list[str] = []
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: released.append("mps"))
    assert release_cached_memory("mps") is True
    assert released == ["mps"]
    assert release_cached_memory("cpu") is False  # torch keeps no cache of host memory
    assert release_cached_memory("openvino:GPU.0") is False  # not a torch device at all


def test_every_first_party_backend_declares_valid_facts():
    plugins = get_plugins()
    facts = backends_of(plugins)
    assert not facts.errors
    assert set(FIRST_PARTY) <= set(facts.known_names())
    infos = {name: facts.infos[name] for name in FIRST_PARTY}
    for name, info in infos.items():
        assert info.plugin == name and info.description and info.advice, name
        assert all(DISTRIBUTION_NAME.match(v) for v in info.versions), name
    assert facts.default_priority()[:5] == ("cuda", "rocm", "mps", "openvino", "cpu")
    assert infos["qnn"].priority is None and infos["web"].priority is None
    assert facts.last_resort_names() == ("cpu",)
    assert {n for n in FIRST_PARTY if infos[n].runs_torch} == {"cpu", "cuda", "rocm", "mps"}
    assert "openvino" in infos["openvino"].versions
    assert "onnxruntime-qnn" in infos["qnn"].versions
    assert set(infos["web"].aliases) == {"webgpu", "webnn", "wasm"}
    assert facts.alias_of("WebNN") == "web"
    import hwaccel

    assert (hwaccel.CUDA, hwaccel.CPU, hwaccel.WEBNN, hwaccel.WEBGPU) == (
        "cuda", "cpu", "webnn", "webgpu")
    with pytest.raises(AttributeError):
        hwaccel.TPU  # noqa: B018 - the attribute access is the test
