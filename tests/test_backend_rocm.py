"""The rocm backend: detection, precision choice, device index, template and CLI.

This machine has no GPU and a CPU-only torch. The real code paths for AMD GPUs are
exercised by replacing the vendor API at its boundary: ``torch.cuda`` functions (which a
ROCm build of torch answers for AMD GPUs), ``torch.version.hip`` and an ``amdsmi`` module put
in ``sys.modules`` by these tests. The tests marked ``cpu_torch`` check what this machine
really is (unpatched) and skip elsewhere.
"""

from __future__ import annotations

import contextlib
import enum
import subprocess
import sys
import types
from typing import Any

import pytest
import torch

from conftest import (
    FakeCudaEvent,
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
from hwaccel.kit.pipeline_parts import BACKEND_SLOTS
from hwaccel_cuda.detect import detect_cuda
from hwaccel_rocm import bench as rocm_bench
from hwaccel_rocm import hwaccel_benchmark, hwaccel_detect, hwaccel_template
from hwaccel_rocm.detect import detect_rocm, read_amdsmi
from hwaccel_rocm.template import SNIPPETS

GiB = 2**30
HIP = "6.2.41133-dd7f95766"
CPU_TORCH = torch.version.cuda is None and torch.version.hip is None
cpu_torch = pytest.mark.skipif(not CPU_TORCH, reason="checks this machine's CPU-only torch")

MI300X = {"name": "AMD Instinct MI300X", "total_memory": 192 * GiB, "free": 190 * GiB,
          "multi_processor_count": 304, "gcnArchName": "gfx942:sramecc+:xnack-",
          "pci": (0, 0xC1, 0), "bf16": True}
W7900 = {"name": "AMD Radeon PRO W7900", "total_memory": 48 * GiB, "free": 47 * GiB,
         "multi_processor_count": 96, "gcnArchName": "gfx1100", "pci": (0, 0x03, 0),
         "bf16": True}


def patch_hip_torch(monkeypatch, devices: list[dict[str, Any]], *, hip: str | None = HIP,
                    cuda: str | None = None, init_error: str | None = None,
                    mem_error: str | None = None) -> dict:
    """Make torch answer as a ROCm build with ``devices`` visible; return the call state."""
    state: dict[str, Any] = {"current": 0, "calls": []}
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 3002000)  # MIOpen 3.2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(devices))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(devices))

    def init():
        if init_error:
            raise RuntimeError(init_error)

    def props(index):
        spec = devices[index]
        domain, bus, device = spec["pci"]
        return types.SimpleNamespace(
            name=spec["name"], total_memory=spec["total_memory"], major=9, minor=4,
            multi_processor_count=spec["multi_processor_count"],
            gcnArchName=spec["gcnArchName"], pci_domain_id=domain, pci_bus_id=bus,
            pci_device_id=device, uuid=f"58ff{index:04x}-0000-1000-8000-00000000{index:04x}")

    def mem_get_info(index):
        if mem_error:
            raise RuntimeError(mem_error)
        return devices[index]["free"], devices[index]["total_memory"]

    @contextlib.contextmanager
    def device(index):
        previous, state["current"] = state["current"], index
        try:
            yield
        finally:
            state["current"] = previous

    def is_bf16_supported(including_emulation=True):
        state["calls"].append(("bf16", state["current"]))
        return devices[state["current"]]["bf16"]

    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(torch.cuda, "get_device_properties", props)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (9, 4))
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return state


class AmdSmiException(Exception):
    """amdsmi's base exception type."""


class AmdSmiMemoryType(enum.IntEnum):
    VRAM = 0
    VIS_VRAM = 1
    GTT = 2


def fake_amdsmi(devices: list[dict[str, Any]], *, init_error: str | None = None,
                activity_error: str | None = None) -> types.ModuleType:
    """An ``amdsmi`` module answering for ``devices`` (its own order, handles are dicts)."""
    module = types.ModuleType("amdsmi")
    module.AmdSmiException = AmdSmiException
    module.AmdSmiMemoryType = AmdSmiMemoryType
    state = {"shutdown": 0, "memory_types": set()}
    module.state = state

    def amdsmi_init(*flags):
        if init_error:
            raise AmdSmiException(init_error)

    def amdsmi_shut_down():
        state["shutdown"] += 1

    def memory_total(handle, kind):
        state["memory_types"].add(kind)
        return handle["total_memory"]

    def memory_usage(handle, kind):
        state["memory_types"].add(kind)
        return handle["smi_used"]

    def activity(handle):
        if activity_error:
            raise AmdSmiException(activity_error)
        return {"gfx_activity": handle["activity"], "umc_activity": 3, "mm_activity": 0}

    def bdf(handle):
        domain, bus, device = handle["pci"]
        return f"{domain:04x}:{bus:02x}:{device:02x}.0"

    module.amdsmi_init = amdsmi_init
    module.amdsmi_shut_down = amdsmi_shut_down
    module.amdsmi_get_processor_handles = lambda: list(devices)
    module.amdsmi_get_gpu_device_bdf = bdf
    module.amdsmi_get_gpu_asic_info = lambda h: {
        "market_name": h["name"], "target_graphics_version": h["gcnArchName"].split(":")[0]}
    module.amdsmi_get_gpu_driver_info = lambda h: {"driver_name": "amdgpu",
                                                   "driver_version": "6.8.5",
                                                   "driver_date": "2015/01/01 00:00"}
    module.amdsmi_get_gpu_memory_total = memory_total
    module.amdsmi_get_gpu_memory_usage = memory_usage
    module.amdsmi_get_gpu_activity = activity
    return module


@pytest.fixture
def no_smi(monkeypatch):
    """Neither amdsmi nor pynvml is importable (whatever this machine has)."""
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)


# -- detection --------------------------------------------------------------------------------


def test_a_rocm_build_is_rocm_not_cuda_with_amdsmi_memory(monkeypatch):
    patch_hip_torch(monkeypatch, [MI300X, W7900])
    # amdsmi lists every GPU in its own order; HIP_VISIBLE_DEVICES renumbers torch's only
    module = fake_amdsmi([{**W7900, "smi_used": 2 * GiB, "activity": 5},
                          {**MI300X, "smi_used": 20 * GiB, "activity": 87}])
    monkeypatch.setitem(sys.modules, "amdsmi", module)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1,0")
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "0,1,2")
    (cuda_record,) = detect_cuda()
    assert not cuda_record.available
    assert cuda_record.reason.startswith("torch is a ROCm (HIP 6.2) build: AMD devices are "
                                         "reported by the rocm backend")
    mi300x, w7900 = detect_rocm()
    assert (mi300x.backend, mi300x.device, mi300x.index) == ("rocm", "cuda:0", 0)
    assert (w7900.device, w7900.index, w7900.name) == ("cuda:1", 1, "AMD Radeon PRO W7900")
    assert mi300x.available and mi300x.name == "AMD Instinct MI300X"
    assert mi300x.memory_total_bytes == 192 * GiB and mi300x.memory_available_bytes == 190 * GiB
    assert mi300x.capabilities == ("fp32", "fp16", "bf16")
    assert mi300x.details["gcn_arch_name"] == "gfx942:sramecc+:xnack-"
    assert mi300x.details["gfx_arch"] == "gfx942" and w7900.details["gfx_arch"] == "gfx1100"
    assert mi300x.details["compute_units"] == 304
    assert mi300x.details["hip_version"] == HIP and mi300x.details["miopen_version"] == 3002000
    assert mi300x.details["visible_devices"] == {"HIP_VISIBLE_DEVICES": "1,0",
                                                 "ROCR_VISIBLE_DEVICES": "0,1,2"}
    smi = mi300x.details["amdsmi"]
    assert smi["vram_used_bytes"] == 20 * GiB and smi["vram_total_bytes"] == 192 * GiB
    assert smi["vram_free_bytes"] == 172 * GiB and smi["gfx_activity_percent"] == 87
    assert smi["driver_version"] == "6.8.5" and smi["target_graphics_version"] == "gfx942"
    assert w7900.details["amdsmi"]["vram_used_bytes"] == 2 * GiB
    assert mi300x.details["amdsmi_driver_version"] == "6.8.5"
    assert module.state["memory_types"] == {AmdSmiMemoryType.VRAM}
    assert module.state["shutdown"] == 1


def test_amdsmi_absent_still_detects_through_torch(monkeypatch, no_smi):
    patch_hip_torch(monkeypatch, [MI300X])
    (mi300x,) = detect_rocm()
    assert mi300x.available and "amdsmi" not in mi300x.details
    assert mi300x.details["amdsmi_note"].startswith("amdsmi not installed")


def test_amdsmi_failing_still_detects_through_torch(monkeypatch):
    patch_hip_torch(monkeypatch, [MI300X])
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi(
        [], init_error="AMDSMI_STATUS_DRIVER_NOT_LOADED"))
    (mi300x,) = detect_rocm()
    assert mi300x.available
    assert mi300x.details["amdsmi_note"] == "amdsmi_init failed: AMDSMI_STATUS_DRIVER_NOT_LOADED"


def test_a_failing_amdsmi_query_keeps_the_rest(monkeypatch):
    patch_hip_torch(monkeypatch, [MI300X])
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi(
        [{**MI300X, "smi_used": GiB, "activity": 0}], activity_error="NOT_SUPPORTED"))
    (mi300x,) = detect_rocm()
    assert mi300x.details["amdsmi"]["vram_used_bytes"] == GiB
    assert mi300x.details["amdsmi"]["errors"] == ["activity: NOT_SUPPORTED"]


def test_free_memory_falls_back_to_amdsmi(monkeypatch):
    patch_hip_torch(monkeypatch, [MI300X], mem_error="hipErrorOutOfMemory")
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi(
        [{**MI300X, "smi_used": 100 * GiB, "activity": 0}]))
    (mi300x,) = detect_rocm()
    assert mi300x.memory_available_bytes == 92 * GiB
    assert mi300x.details["memory_source"] == "amdsmi"


def test_bf16_follows_torch(monkeypatch, no_smi):
    patch_hip_torch(monkeypatch, [MI300X, {**W7900, "bf16": False}])
    mi300x, w7900 = detect_rocm()
    assert "bf16" in mi300x.capabilities and w7900.capabilities == ("fp32", "fp16")


def test_a_runtime_error_is_the_reason(monkeypatch, no_smi):
    patch_hip_torch(monkeypatch, [], init_error="No HIP GPUs are available")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "7")
    (record,) = detect_rocm()
    assert not record.available and record.device == "rocm"
    assert record.reason.startswith(f"torch {torch.__version__} (HIP {HIP}) cannot use a GPU: "
                                    "No HIP GPUs are available")
    assert record.details["visible_devices"] == {"HIP_VISIBLE_DEVICES": "7"}


def test_no_visible_gpu_names_the_visibility_variables(monkeypatch):
    patch_hip_torch(monkeypatch, [])
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "")
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi(
        [{**MI300X, "smi_used": 0, "activity": 0}]))
    (record,) = detect_rocm()
    assert "sees no AMD GPU (ROCR_VISIBLE_DEVICES='')" in record.reason
    assert record.reason.endswith("amdsmi sees 1 AMD GPU (driver 6.8.5)")


def test_a_cuda_build_is_not_rocm(monkeypatch, no_smi):
    patch_hip_torch(monkeypatch, [MI300X], hip=None, cuda="12.4")
    (record,) = detect_rocm()
    assert record.reason.startswith(f"torch {torch.__version__} is a CUDA 12.4 build: NVIDIA "
                                    "devices are reported by the cuda backend")


def test_torch_not_installed(monkeypatch, no_smi):
    monkeypatch.setitem(sys.modules, "torch", None)
    (record,) = detect_rocm()
    assert record.reason.startswith("torch is not installed; amdsmi: amdsmi not installed")


def test_read_amdsmi_keeps_what_it_read(monkeypatch):
    module = fake_amdsmi([{**MI300X, "smi_used": 0, "activity": 0}, {"broken": True}])
    monkeypatch.setitem(sys.modules, "amdsmi", module)
    report = read_amdsmi()
    assert len(report.devices) == 1 and report.note.startswith("amdsmi query failed")
    assert module.state["shutdown"] == 1


@cpu_torch
def test_this_machine_reports_a_non_rocm_build(no_smi):
    (record,) = hwaccel_detect()
    assert not record.available and record.backend == "rocm"
    assert record.reason == (f"torch {torch.__version__} is not a ROCm build "
                             "(torch.version.hip is None); amdsmi: amdsmi not installed (it "
                             "ships with ROCm: /opt/rocm/share/amd_smi)")


def test_plugin_modules_import_without_torch():
    code = ("import sys, hwaccel_rocm, hwaccel_rocm.detect, hwaccel_rocm.bench, "
            "hwaccel_rocm.template; "
            "print([m for m in ('torch', 'amdsmi', 'hwaccel_cuda') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr



def request_for(index: int, precision: str = "fp32") -> BenchmarkRequest:
    hardware = HardwareInfo(backend="rocm", device=f"cuda:{index}", name="GPU",
                            available=True, index=index)
    classification = Classification(model="tiny:bert", family="embedding", pipeline="text",
                                    workload="hwaccel_pipeline_text.workload:TextWorkload")
    return BenchmarkRequest(model="tiny:bert", hardware=hardware, classification=classification,
                            settings=BenchmarkSettings(precision=precision))


@pytest.fixture
def measured(monkeypatch):
    """Record the calls a benchmark makes to torch.cuda and to the core's measurement."""
    calls: list[tuple] = []
    for name in ("set_device", "reset_peak_memory_stats", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, lambda device=None, _n=name:
                            calls.append((_n, str(device))))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated",
                        lambda device=None: calls.append(("max_memory_allocated",)) or 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 2**21)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "AMD Instinct")
    monkeypatch.setattr(torch.cuda, "Event", FakeCudaEvent)  # HIP events on ROCm builds

    def benchmark_workload(request, **kwargs):
        calls.append(("benchmark_workload", kwargs))
        kwargs["synchronize"]()
        return BenchmarkResult(model=request.model, backend=request.hardware.backend,
                               device=request.hardware.device, success=True,
                               precision=kwargs["precision"])

    import hwaccel.kit.measure

    monkeypatch.setattr(hwaccel.kit.measure, "benchmark_workload", benchmark_workload)
    return calls


def test_benchmark_runs_on_the_hip_device_of_the_index(monkeypatch, measured):
    patch_hip_torch(monkeypatch, [MI300X, W7900])
    result = hwaccel_benchmark(request=request_for(1, "bf16"))
    assert result.success and result.precision == "bf16"
    assert [c[0] for c in measured] == ["set_device", "reset_peak_memory_stats",
                                        "benchmark_workload", "synchronize",
                                        "max_memory_allocated"]
    assert measured[1] == ("reset_peak_memory_stats", "cuda:1")
    assert measured[2][1]["compare_reference"] is True


def test_bf16_unsupported_falls_back_to_fp32(monkeypatch, measured):
    patch_hip_torch(monkeypatch, [{**MI300X, "bf16": False}])
    result = hwaccel_benchmark(request=request_for(0, "bf16"))
    assert result.precision == "fp32"
    assert result.details["precision_note"] == (
        "bf16 requested but HIP device 0: torch.cuda.is_bf16_supported() is False; ran fp32")
    assert rocm_bench.precision_problem(torch, 0, "fp16") is None


def test_an_index_beyond_the_visible_devices_is_a_clear_failure(monkeypatch, measured):
    patch_hip_torch(monkeypatch, [MI300X])
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "3")
    result = hwaccel_benchmark(request=request_for(1))
    assert (result.success, result.error_category) == (False, "unavailable")
    assert result.error == ("device index 1 is out of range: torch.cuda.device_count() is 1 "
                            "(HIP_VISIBLE_DEVICES='3'); the detection may be stale "
                            "(run `hwaccel detect --refresh`)")
    assert measured == []


def test_other_backends_requests_are_not_answered():
    request = request_for(0)
    other = BenchmarkRequest(model=request.model, classification=request.classification,
                             hardware=HardwareInfo(backend="cuda", device="cuda:0", name="x",
                                                   available=True))
    assert hwaccel_benchmark(request=other) is None
    assert hwaccel_template(backend="cuda") is None


# -- template and CLI -------------------------------------------------------------------------


def test_snippets_fill_every_slot():
    part = hwaccel_template(backend="rocm")
    assert (part.owner, part.name) == ("backend", "rocm")
    assert set(BACKEND_SLOTS) <= set(part.snippets) and part.snippets == SNIPPETS


def _availability() -> Any:
    namespace: dict[str, Any] = {"torch": torch}
    exec(SNIPPETS["availability"], namespace)  # noqa: S102 - our own snippet
    assert namespace["DEVICE"] == "cuda:0"
    return namespace["unavailable_reason"]


def test_generated_availability_check_uses_the_hip_build(monkeypatch):
    patch_hip_torch(monkeypatch, [MI300X])
    assert _availability()() is None
    patch_hip_torch(monkeypatch, [], init_error="No HIP GPUs are available")
    assert _availability()() == f"torch (HIP {HIP}) cannot use a GPU: No HIP GPUs are available"
    patch_hip_torch(monkeypatch, [MI300X], hip=None, cuda="12.4")
    assert _availability()().endswith("is not a ROCm build (torch.version.hip is None)")


@cpu_torch
def test_generated_test_skips_with_the_real_reason(tmp_path):
    assert_generated_tests_skip("rocm", f"torch {torch.__version__} is not a ROCm build "
                                        "(torch.version.hip is None)", tmp_path)


@cpu_torch
def test_cli_benchmark_records_rocm_as_unavailable(tmp_db):
    assert_benchmark_unavailable("rocm", tmp_db, f"torch {torch.__version__} is not a ROCm build")
