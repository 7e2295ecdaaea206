"""The detection cache is redone when what detection depends on changes, and expires;
free memory of the host is read when the cache is loaded, never taken from it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psutil
import pytest

from hwaccel.hardware.detection import cache_file, detect
from hwaccel.plugins import load


@pytest.fixture(autouse=True)
def cpu_only_own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HWACCEL_LOAD_PLUGINS", "cpu")  # seconds, not a browser's start


def _install(site: Path, dist_info: str) -> None:
    """Install a distribution as pip leaves it: a ``NAME-VERSION.dist-info`` folder."""
    folder = site / dist_info
    folder.mkdir(parents=True)
    name, version = dist_info.removesuffix(".dist-info").split("-")
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture
def site_packages(tmp_path, monkeypatch) -> Path:
    """An empty ``site-packages`` folder on ``sys.path``."""
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_installing_a_library_a_plugin_probes_for_redetects(site_packages):
    # hwaccel-cuda reads NVML when nvidia-ml-py is installed, without requiring it
    detect(load(), refresh=True)
    assert detect(load()).cached
    _install(site_packages, "nvidia_ml_py-13.580.82.dist-info")
    assert not detect(load()).cached
    assert detect(load()).cached


def test_upgrading_an_installed_library_redetects(site_packages):
    _install(site_packages, "onnxruntime_qnn-2.7.0.dist-info")
    detect(load(), refresh=True)
    (site_packages / "onnxruntime_qnn-2.7.0.dist-info").rename(
        site_packages / "onnxruntime_qnn-2.8.0.dist-info")
    assert not detect(load()).cached


@pytest.mark.parametrize("variable", ["CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                                      "ZE_AFFINITY_MASK"])
def test_changing_the_visible_devices_redetects(monkeypatch, variable):
    monkeypatch.setenv(variable, "0")
    detect(load(), refresh=True)
    assert detect(load()).cached
    monkeypatch.setenv(variable, "1")
    assert not detect(load()).cached
    monkeypatch.delenv(variable)
    assert not detect(load()).cached


def _age_cache(seconds: float) -> None:
    data = json.loads(cache_file().read_text())
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    data["timestamp"] = then.isoformat(timespec="seconds")
    cache_file().write_text(json.dumps(data))


def test_a_cache_older_than_an_hour_redetects():
    # the README and `hwaccel detect --help` say the cache expires after an hour
    detect(load(), refresh=True)
    _age_cache(3600 - 60)
    assert detect(load()).cached
    _age_cache(3600 + 60)
    fresh = detect(load())
    assert not fresh.cached
    age = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(fresh.timestamp)
    assert age.total_seconds() < 60


def test_a_cache_from_the_future_or_without_a_time_redetects():
    detect(load(), refresh=True)
    _age_cache(-3 * 3600)  # the clock went back since
    assert not detect(load()).cached
    data = json.loads(cache_file().read_text())
    del data["timestamp"]
    cache_file().write_text(json.dumps(data))
    assert not detect(load()).cached


def test_free_host_memory_is_read_live_from_a_cached_detection(monkeypatch):
    real = psutil.virtual_memory()
    first = detect(load(), refresh=True)
    (cpu,) = [h for h in first.hardware if h.backend == "cpu"]
    live = real._replace(available=cpu.memory_available_bytes // 3 + 12345)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: live)
    cached = detect(load())
    assert cached.cached
    (cached_cpu,) = [h for h in cached.hardware if h.backend == "cpu"]
    assert cached_cpu.memory_available_bytes == live.available
    assert cached_cpu.memory_total_bytes == real.total
    assert cached_cpu.to_dict() | {"memory_available_bytes": None} == (
        cpu.to_dict() | {"memory_available_bytes": None})
