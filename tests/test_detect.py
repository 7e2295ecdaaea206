"""CPU detection is real, cached, refreshed, and kept in the database when fresh."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import duckdb
import psutil
import pytest

from conftest import run_cli
from hwaccel import detect_available_hardware
from hwaccel.hardware.detection import cache_file, detect
from hwaccel.plugins import load


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))


def _proc_cpuinfo_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_cpu_detection_matches_the_operating_system():
    (cpu,) = [h for h in detect(load(), refresh=True).hardware if h.backend == "cpu"]
    assert cpu.available and cpu.device == "cpu" and cpu.name
    assert cpu.details["physical_cores"] == psutil.cpu_count(logical=False)
    assert cpu.details["logical_cores"] == psutil.cpu_count(logical=True)
    assert cpu.memory_total_bytes == psutil.virtual_memory().total
    assert 0 < cpu.memory_available_bytes <= cpu.memory_total_bytes
    assert cpu.details["torch"] == importlib.metadata.version("torch")
    assert cpu.details["torch_threads"] >= 1
    flags = _proc_cpuinfo_flags()
    if flags:  # Linux: the kernel's own view of the ISA
        assert ("avx2" in cpu.capabilities) == ("avx2" in flags)
        assert ("avx512" in cpu.capabilities) == ("avx512f" in flags)
        assert cpu.details["isa"]["amx"] == ("amx_tile" in flags)
    assert (cpu.plugin, cpu.distribution) == ("cpu", "hwaccel-cpu")


def test_detection_is_cached_until_refresh_and_survives_a_corrupt_cache():
    plugins = load()
    first = detect(plugins, refresh=True)
    assert not first.cached
    second = detect(plugins)
    assert second.cached and second.timestamp == first.timestamp
    # all but the host's free memory, which is read again (test_detection_cache.py)
    def without_free(report):
        return [h.to_dict() | {"memory_available_bytes": None} for h in report.hardware]
    assert without_free(second) == without_free(first)
    cache_file().write_text("{not json")
    third = detect(plugins)
    assert not third.cached
    assert json.loads(cache_file().read_text())["hardware"]


def test_a_different_plugin_set_does_not_reuse_the_cache(monkeypatch):
    detect(load(), refresh=True)
    monkeypatch.setenv("HWACCEL_DISABLE_PLUGINS", "cpu")
    report = detect(load())
    assert not report.cached and "cpu" not in {h.backend for h in report.hardware}


def test_cli_detect_records_fresh_detections_only(tmp_path):
    db = tmp_path / "d.duckdb"
    env = {"HWACCEL_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli("detect", "--json", "--db", str(db), env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["cached"] is False
    second = run_cli("detect", "--json", "--db", str(db), env=env)
    assert json.loads(second.stdout)["cached"] is True
    run_cli("detect", "--refresh", "--db", str(db), env=env)
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT hardware_type, available, features, device "
                            "FROM hardware_detection").fetchall()
    cpu_rows = [r for r in rows if r[0] == "cpu"]
    assert len(cpu_rows) == 2 and all(r[1] for r in cpu_rows)  # first run and --refresh
    assert len(rows) == 2 * len({(r[0], r[3]) for r in rows})  # every device recorded twice


def test_predecessor_api_detect_available_hardware():
    hardware = detect_available_hardware(refresh=True)
    assert hardware["cpu"]["available"] is True
    assert hardware["cpu"]["devices"][0]["details"]["physical_cores"] >= 1
