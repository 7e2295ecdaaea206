"""The mps backend: detection through torch.backends.mps, the macOS version, sysctl and
psutil; its precisions; its absence on this Linux machine, reported with the reason.

No Apple GPU is here. Detection is tested for real (absent) and with ``torch.backends.mps``,
``torch.mps``, ``platform`` and the ``sysctl`` call replaced by the test.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import psutil
import pytest
import torch

from conftest import (
    assert_benchmark_unavailable,
    assert_generated_tests_skip,
)
from hwaccel import (
    BenchmarkRequest,
    BenchmarkResult,
    BenchmarkSettings,
    Classification,
    HardwareInfo,
)
from hwaccel_mps import bench, detect
from hwaccel_mps.detect import FALLBACK_ENV, detect_mps


@pytest.fixture(autouse=True)
def no_fallback_setting(monkeypatch):
    """Tests start without the caller's PYTORCH_ENABLE_MPS_FALLBACK."""
    monkeypatch.delenv(FALLBACK_ENV, raising=False)


def on_a_mac(monkeypatch, *, built: bool = True, available: bool = True,
             macos: str = "14.5", chip: str | None = "Apple M2 Pro") -> list[list[str]]:
    """Make this process look like macOS on Apple silicon to torch, platform and sysctl.

    :returns: the list the sysctl calls are recorded into.
    """
    calls: list[list[str]] = []
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    monkeypatch.setattr(platform, "mac_ver", lambda: (macos, ("", "", ""), "arm64"))
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: built)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: available)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer",
                        lambda major, minor: tuple(map(int, macos.split("."))) >= (major, minor))
    monkeypatch.setattr(torch.backends.mps, "get_name", lambda: "Apple M2 Pro")
    monkeypatch.setattr(torch.backends.mps, "get_core_count", lambda: 19)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 22 * 2**30)

    def sysctl(args, **kwargs):
        calls.append(list(args))
        ok = chip is not None and args[-1] == "machdep.cpu.brand_string"
        return subprocess.CompletedProcess(args, 0 if ok else 1, f"{chip}\n" if ok else "", "")

    monkeypatch.setattr(detect.subprocess, "run", sysctl)
    return calls


def test_mps_is_absent_here_with_the_precise_reason():
    info = detect_mps()
    assert not info.available and info.backend == "mps"
    assert platform.system() != "Darwin" and not torch.backends.mps.is_built()
    assert info.reason == (f"MPS needs macOS on Apple silicon; this is {platform.system()} "
                           f"{platform.machine()}; torch {torch.__version__} is built without "
                           "MPS (torch.backends.mps.is_built() is False)")
    assert info.details["cpu_fallback"] is False and info.details["mps_built"] is False


def test_mps_on_apple_silicon_is_reported_with_unified_memory(monkeypatch):
    calls = on_a_mac(monkeypatch)
    info = detect_mps()
    assert info.available and info.reason is None
    assert (info.device, info.name) == ("mps", "Apple M2 Pro")
    assert info.capabilities == ("fp32", "fp16", "bf16")
    total = psutil.virtual_memory().total
    assert info.memory_total_bytes == total and 0 < info.memory_available_bytes <= total
    details = info.details
    assert details["macos"] == "14.5" and details["chip"] == "Apple M2 Pro"
    assert details["gpu_cores"] == 19 and details["recommended_max_memory_bytes"] == 22 * 2**30
    assert details["unified_memory"] is True and "detail_errors" not in details
    assert ["sysctl", "-n", "machdep.cpu.brand_string"] in calls


def test_macos_13_has_no_bf16_and_the_chip_falls_back_to_platform(monkeypatch):
    on_a_mac(monkeypatch, macos="13.6", chip=None)
    info = detect_mps()
    assert info.available and "bf16" not in info.capabilities
    assert info.details["chip"] == "arm"


def test_mps_built_but_not_available_says_so(monkeypatch):
    on_a_mac(monkeypatch, available=False, macos="12.1")
    info = detect_mps()
    assert not info.available
    assert info.reason == ("torch.backends.mps.is_available() is False on macOS 12.1 (arm64): "
                           "MPS needs macOS 12.3 or newer and a Metal GPU")


def test_torch_without_mps_on_a_mac_says_so(monkeypatch):
    on_a_mac(monkeypatch, built=False)
    info = detect_mps()
    assert not info.available
    assert info.reason == (f"torch {torch.__version__} is built without MPS "
                           "(torch.backends.mps.is_built() is False)")


@pytest.mark.parametrize(("value", "enabled"), [("1", True), ("0", False), ("yes", None)])
def test_cpu_fallback_setting_is_reported(monkeypatch, value, enabled):
    on_a_mac(monkeypatch)
    monkeypatch.setenv(FALLBACK_ENV, value)
    details = detect_mps().details
    assert details["cpu_fallback"] is enabled and details["cpu_fallback_env"] == value
    if enabled:
        assert "run on the CPU silently" in details["cpu_fallback_note"]


def test_precision_resolution(monkeypatch):
    assert bench.resolve_precision("fp32") == ("fp32", torch.float32)
    assert bench.resolve_precision("fp16") == ("fp16", torch.float16)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: False)
    assert bench.resolve_precision("bf16") == ("fp32", torch.float32)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: True)
    assert bench.resolve_precision("bf16") == ("bf16", torch.bfloat16)


def test_inputs_are_cast_to_the_precision_but_ids_keep_their_dtype(monkeypatch):
    monkeypatch.setattr(bench, "DEVICE", "cpu")  # the casting logic, on a device we have
    place_model, place_inputs = bench.placement(torch.float16)
    ids = torch.ones(1, 3, dtype=torch.int64)
    placed = place_inputs({"pixel_values": torch.ones(1, 3), "input_ids": ids, "note": "x"})
    assert placed["pixel_values"].dtype == torch.float16
    assert placed["input_ids"].dtype == torch.int64 and placed["note"] == "x"
    assert place_model(torch.nn.Linear(2, 2)).weight.dtype == torch.float16


def test_benchmark_measures_with_mps_sync_and_a_cpu_reference(monkeypatch):
    seen = {}

    def measured(request, **kwargs):
        seen.update(kwargs)
        return BenchmarkResult(model="tiny:bert", backend="mps", device="mps", success=True)

    monkeypatch.setattr(bench, "benchmark_workload", measured)
    request = BenchmarkRequest(
        model="tiny:bert", hardware=HardwareInfo(backend="mps", device="mps", name="Apple GPU",
                                                 available=True),
        classification=Classification(model="tiny:bert", family="text"),
        settings=BenchmarkSettings(precision="fp16"))
    result = bench.run(request)
    assert result.success and result.details["cpu_fallback"] == detect.cpu_fallback()
    assert seen["synchronize"] is torch.mps.synchronize
    assert seen["compare_reference"] is True and seen["precision"] == "fp16"


def test_the_plugin_loads_without_torch():
    code = "import sys, hwaccel_mps; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_generated_test_skips_with_the_reason(tmp_path):
    assert_generated_tests_skip(
        "mps", f"MPS needs macOS on Apple silicon; this is {platform.system()} "
               f"{platform.machine()}; torch {torch.__version__} is built without MPS", tmp_path)


def test_benchmark_cli_records_mps_as_unavailable(tmp_db):
    assert_benchmark_unavailable("mps", tmp_db, "MPS needs macOS")
