"""The cuda backend: detection, precision choice, device index, template and CLI.

This machine has no GPU and a CPU-only torch. The real code paths for NVIDIA GPUs are
exercised by replacing the vendor API at its boundary: ``torch.cuda`` functions,
``torch.version`` and a ``pynvml`` module put in ``sys.modules`` by these tests. The tests
marked ``cpu_torch`` check what this machine really is (unpatched) and skip elsewhere.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import types
import uuid
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
from hwaccel.kit import torchgpu
from hwaccel.kit.pipeline_parts import BACKEND_SLOTS
from hwaccel_cuda import bench as cuda_bench
from hwaccel_cuda import hwaccel_benchmark, hwaccel_detect, hwaccel_template
from hwaccel_cuda.detect import detect_cuda, read_nvml
from hwaccel_cuda.template import SNIPPETS

GiB = 2**30
CPU_TORCH = torch.version.cuda is None and torch.version.hip is None
cpu_torch = pytest.mark.skipif(not CPU_TORCH, reason="checks this machine's CPU-only torch")

H100 = {"name": "NVIDIA H100 80GB HBM3", "total_memory": 80 * GiB, "major": 9, "minor": 0,
        "multi_processor_count": 132, "pci": (0, 0x3B, 0), "free": 79 * GiB, "bf16": True}
T4 = {"name": "Tesla T4", "total_memory": 15 * GiB, "major": 7, "minor": 5,
      "multi_processor_count": 40, "pci": (0, 0xAF, 0), "free": 14 * GiB, "bf16": False}
M60 = {"name": "Tesla M60", "total_memory": 8 * GiB, "major": 5, "minor": 2,
       "multi_processor_count": 16, "pci": (0, 0x05, 0), "free": 7 * GiB, "bf16": False}


def _uuid(spec: dict[str, Any]) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, spec["name"] + str(spec["pci"])))


def patch_torch(monkeypatch, devices: list[dict[str, Any]], *, cuda: str | None = "12.4",
                hip: str | None = None, cudnn: int | None = 90100,
                init_error: str | None = None, mem_error: str | None = None) -> dict:
    """Make torch answer as a build with ``devices`` visible; return the call state."""
    state: dict[str, Any] = {"current": 0, "calls": []}
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: cudnn)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(devices))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(devices))

    def init():
        if init_error:
            raise RuntimeError(init_error)

    def props(index):
        spec = devices[index]
        domain, bus, device = spec["pci"]
        return types.SimpleNamespace(
            name=spec["name"], total_memory=spec["total_memory"], major=spec["major"],
            minor=spec["minor"], multi_processor_count=spec["multi_processor_count"],
            pci_domain_id=domain, pci_bus_id=bus, pci_device_id=device, uuid=_uuid(spec),
            gcnArchName=spec.get("gcnArchName", ""))

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
        state["calls"].append(("bf16", state["current"], including_emulation))
        return devices[state["current"]]["bf16"]

    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(torch.cuda, "get_device_properties", props)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda i: (devices[i]["major"], devices[i]["minor"]))
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return state


class NVMLError(Exception):
    """pynvml's exception type."""


def fake_pynvml(devices: list[dict[str, Any]], *, init_error: str | None = None,
                utilization_error: str | None = None) -> types.ModuleType:
    """A ``pynvml`` module answering for ``devices`` in NVML's own (PCI) order."""
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError
    state = {"shutdown": 0}
    module.state = state

    def nvmlInit():
        if init_error:
            raise NVMLError(init_error)

    def nvmlShutdown():
        state["shutdown"] += 1

    def pci_info(handle):
        domain, bus, device = devices[handle]["pci"]
        return types.SimpleNamespace(busId=f"{domain:08X}:{bus:02X}:{device:02X}.0".encode())

    def memory_info(handle):
        spec = devices[handle]
        used = spec["nvml_used"]
        return types.SimpleNamespace(total=spec["total_memory"], used=used,
                                     free=spec["total_memory"] - used)

    def utilization(handle):
        if utilization_error:
            raise NVMLError(utilization_error)
        return types.SimpleNamespace(gpu=devices[handle]["util"], memory=7)

    module.nvmlInit = nvmlInit
    module.nvmlShutdown = nvmlShutdown
    module.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    module.nvmlSystemGetCudaDriverVersion = lambda: 12040
    module.nvmlDeviceGetCount = lambda: len(devices)
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetName = lambda h: devices[h]["name"]
    module.nvmlDeviceGetPciInfo = pci_info
    module.nvmlDeviceGetUUID = lambda h: "GPU-" + _uuid(devices[h])
    module.nvmlDeviceGetMemoryInfo = memory_info
    module.nvmlDeviceGetUtilizationRates = utilization
    return module


@pytest.fixture
def no_nvml(monkeypatch):
    """pynvml is not importable (whatever this machine has)."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.delenv(name, raising=False)


# -- detection --------------------------------------------------------------------------------


def test_several_devices_with_nvml_matched_by_pci_address(monkeypatch):
    state = patch_torch(monkeypatch, [H100, T4])
    # CUDA_VISIBLE_DEVICES renumbers torch's devices, not NVML's: torch's cuda:0 (the H100)
    # is NVML's device 1, so only the PCI address can pair them.
    nvml_devices = [{**T4, "nvml_used": 3 * GiB, "util": 11},
                    {**H100, "nvml_used": 5 * GiB, "util": 42}]
    module = fake_pynvml(nvml_devices)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    h100, t4 = detect_cuda()
    assert (h100.device, h100.index, h100.name) == ("cuda:0", 0, "NVIDIA H100 80GB HBM3")
    assert (t4.device, t4.index, t4.name) == ("cuda:1", 1, "Tesla T4")
    assert h100.available and t4.available
    assert h100.memory_total_bytes == 80 * GiB and h100.memory_available_bytes == 79 * GiB
    assert t4.memory_available_bytes == 14 * GiB
    assert h100.capabilities == ("fp32", "fp16", "bf16", "tf32", "tensor_cores")
    assert t4.capabilities == ("fp32", "fp16", "tensor_cores")  # 7.5: no bf16, no tf32
    assert h100.details["compute_capability"] == "9.0"
    assert h100.details["multiprocessor_count"] == 132
    assert (h100.details["cuda_version"], h100.details["cudnn_version"]) == ("12.4", 90100)
    assert h100.details["torch"] == torch.__version__ and h100.details["device_count"] == 2
    assert h100.details["visible_devices"] == {"CUDA_VISIBLE_DEVICES": "1,0"}
    assert h100.details["pci_bus_id"] == "0000:3b:00.0"
    # the matrix times one cell per GPU at a time, known by its PCI address
    assert h100.compute_resource == "gpu:0000:3b:00.0" != t4.compute_resource
    assert h100.details["nvml"]["nvml_index"] == 1
    assert h100.details["nvml"]["memory_used_bytes"] == 5 * GiB
    assert h100.details["nvml"]["memory_free_bytes"] == 75 * GiB
    assert h100.details["nvml"]["utilization_gpu_percent"] == 42
    assert t4.details["nvml"]["utilization_gpu_percent"] == 11
    assert h100.details["nvml_driver_version"] == "550.54.15"
    assert h100.details["nvml_cuda_driver_version"] == "12.4"
    # bf16 is asked per device, with that device current, and emulation does not count
    assert ("bf16", 0, False) in state["calls"] and ("bf16", 1, False) in state["calls"]
    assert module.state["shutdown"] == 1


def test_nvml_matches_by_uuid_when_torch_reports_no_pci_address(monkeypatch):
    patch_torch(monkeypatch, [H100])
    original = torch.cuda.get_device_properties

    def props_without_pci(index):
        props = original(index)
        del props.pci_domain_id
        return props

    monkeypatch.setattr(torch.cuda, "get_device_properties", props_without_pci)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(
        [{**T4, "nvml_used": 1, "util": 1}, {**H100, "nvml_used": 2, "util": 2}]))
    (h100,) = detect_cuda()
    assert h100.details["pci_bus_id"] is None
    assert h100.compute_resource == "gpu:0"  # by index when no PCI address is known
    assert h100.details["nvml"]["name"] == "NVIDIA H100 80GB HBM3"


def test_nvml_absent_still_detects_through_torch(monkeypatch, no_nvml):
    patch_torch(monkeypatch, [H100, T4])
    devices = detect_cuda()
    assert [d.available for d in devices] == [True, True]
    assert "nvml" not in devices[0].details
    assert devices[0].details["nvml_note"].startswith("pynvml not installed")
    assert devices[0].details["nvml_driver_version"] is None


def test_nvml_failing_at_init_still_detects_through_torch(monkeypatch):
    patch_torch(monkeypatch, [H100])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(
        [], init_error="NVML Shared Library Not Found"))
    (h100,) = detect_cuda()
    assert h100.available and h100.capabilities[:3] == ("fp32", "fp16", "bf16")
    assert h100.details["nvml_note"] == "nvmlInit failed: NVML Shared Library Not Found"


def test_a_failing_nvml_query_keeps_the_rest_of_the_record(monkeypatch):
    patch_torch(monkeypatch, [H100])
    module = fake_pynvml([{**H100, "nvml_used": GiB, "util": 1}], utilization_error="Not Supported")
    monkeypatch.setitem(sys.modules, "pynvml", module)
    (h100,) = detect_cuda()
    assert h100.details["nvml"]["memory_used_bytes"] == GiB
    assert "utilization_gpu_percent" not in h100.details["nvml"]
    assert h100.details["nvml"]["errors"] == ["utilization: Not Supported"]
    assert module.state["shutdown"] == 1


def test_free_memory_falls_back_to_nvml_when_mem_get_info_fails(monkeypatch):
    patch_torch(monkeypatch, [H100], mem_error="CUDA error: out of memory")
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([{**H100, "nvml_used": 30 * GiB,
                                                             "util": 99}]))
    (h100,) = detect_cuda()
    assert h100.memory_total_bytes == 80 * GiB and h100.memory_available_bytes == 50 * GiB
    assert h100.details["memory_source"] == "nvml"
    assert "mem_get_info(0) failed: CUDA error: out of memory" in h100.details["memory_note"]


def test_free_memory_is_unknown_without_mem_get_info_or_nvml(monkeypatch, no_nvml):
    patch_torch(monkeypatch, [H100], mem_error="busy")
    (h100,) = detect_cuda()
    assert h100.memory_total_bytes == 80 * GiB and h100.memory_available_bytes is None
    assert h100.details["memory_source"] is None


def test_bf16_and_fp16_follow_the_device(monkeypatch, no_nvml):
    patch_torch(monkeypatch, [{**T4, "bf16": True}, M60])
    t4, m60 = detect_cuda()
    assert "bf16" in t4.capabilities  # what torch.cuda.is_bf16_supported says for it
    assert m60.capabilities == ("fp32",)  # 5.2: no native fp16, no bf16


def test_a_rocm_build_is_left_to_the_rocm_backend(monkeypatch, no_nvml):
    patch_torch(monkeypatch, [{**H100, "name": "AMD Instinct MI300X"}], cuda=None,
                hip="6.2.41133-dd7f95766")
    (record,) = detect_cuda()
    assert not record.available and record.device == "cuda"
    assert record.reason.startswith("torch is a ROCm (HIP 6.2) build: AMD devices are "
                                    "reported by the rocm backend")
    assert record.details["hip_version"] == "6.2.41133-dd7f95766"


def test_a_driver_error_is_the_reason(monkeypatch, no_nvml):
    patch_torch(monkeypatch, [], init_error="Found no NVIDIA driver on your system. Please "
                "check that you have an NVIDIA GPU and installed a driver\nmore text")
    (record,) = detect_cuda()
    assert not record.available
    assert record.reason.startswith(f"torch {torch.__version__} (CUDA 12.4) cannot use CUDA: "
                                    "Found no NVIDIA driver on your system.")
    assert "more text" not in record.reason
    assert record.reason.endswith("NVML: pynvml not installed (pip install nvidia-ml-py)")


def test_no_visible_device_names_the_visibility_variable(monkeypatch):
    patch_torch(monkeypatch, [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([{**H100, "nvml_used": 0,
                                                             "util": 0}]))
    (record,) = detect_cuda()
    assert "(CUDA 12.4) sees no CUDA device (CUDA_VISIBLE_DEVICES='')" in record.reason
    assert record.reason.endswith("NVML sees 1 NVIDIA GPU (driver 550.54.15)")


def test_torch_not_installed(monkeypatch, no_nvml):
    monkeypatch.setitem(sys.modules, "torch", None)
    (record,) = detect_cuda()
    assert not record.available
    assert record.reason == ("torch is not installed; NVML: pynvml not installed "
                             "(pip install nvidia-ml-py)")


def test_a_device_torch_cannot_read_is_reported_and_the_others_kept(monkeypatch, no_nvml):
    patch_torch(monkeypatch, [H100, T4])
    original = torch.cuda.get_device_properties

    def broken(index):
        if index == 1:
            raise RuntimeError("CUDA error: uncorrectable ECC error encountered")
        return original(index)

    monkeypatch.setattr(torch.cuda, "get_device_properties", broken)
    h100, t4 = detect_cuda()
    assert h100.available and not t4.available
    assert t4.reason == "torch cannot read cuda:1: CUDA error: uncorrectable ECC error encountered"


@cpu_torch
def test_this_machine_reports_the_cpu_only_build(no_nvml):
    (record,) = hwaccel_detect()
    assert not record.available and record.backend == "cuda"
    assert record.reason == (f"torch {torch.__version__} is a CPU-only build "
                             "(torch.version.cuda is None): no CUDA; NVML: pynvml not "
                             "installed (pip install nvidia-ml-py)")


def test_read_nvml_never_raises_midway(monkeypatch):
    module = fake_pynvml([{**H100, "nvml_used": 0, "util": 0}])
    module.nvmlDeviceGetCount = lambda: 2  # the second handle does not exist
    monkeypatch.setitem(sys.modules, "pynvml", module)
    report = read_nvml()
    assert len(report.devices) == 1 and report.note.startswith("NVML query failed")
    assert module.state["shutdown"] == 1


def test_pci_addresses_parse_in_nvml_and_sysfs_forms():
    assert torchgpu.parse_bdf(b"00000000:3B:00.0") == (0, 0x3B, 0)
    assert torchgpu.parse_bdf("0001:c1:1f.3") == (1, 0xC1, 0x1F)
    assert torchgpu.parse_bdf("not a bus id") is None and torchgpu.parse_bdf(None) is None


def test_plugin_modules_import_without_torch():
    code = ("import sys, hwaccel_cuda, hwaccel_cuda.detect, hwaccel_cuda.bench, "
            "hwaccel_cuda.template; "
            "print([m for m in ('torch', 'pynvml') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


# -- benchmark --------------------------------------------------------------------------------


def request_for(index: int, precision: str = "fp32", backend: str = "cuda") -> BenchmarkRequest:
    hardware = HardwareInfo(backend=backend, device=f"cuda:{index}", name="GPU",
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
                        lambda device=None: calls.append(("max_memory_allocated",)) or 300 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 512 * 2**20)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla M60")
    monkeypatch.setattr(torch.cuda, "Event", FakeCudaEvent)

    def benchmark_workload(request, **kwargs):
        calls.append(("benchmark_workload", kwargs))
        kwargs["synchronize"]()
        return BenchmarkResult(model=request.model, backend=request.hardware.backend,
                               device=request.hardware.device, success=True,
                               precision=kwargs["precision"])

    import hwaccel.kit.measure

    monkeypatch.setattr(hwaccel.kit.measure, "benchmark_workload", benchmark_workload)
    return calls


def test_benchmark_uses_the_requested_index_and_resets_peak_memory(monkeypatch, measured):
    patch_torch(monkeypatch, [H100, H100])
    result = hwaccel_benchmark(request=request_for(1, "fp16"))
    assert result.success and result.precision == "fp16"
    names = [c[0] for c in measured]
    assert names == ["set_device", "reset_peak_memory_stats", "benchmark_workload",
                     "synchronize", "max_memory_allocated"]
    assert measured[1] == ("reset_peak_memory_stats", "cuda:1")
    assert measured[3] == ("synchronize", "cuda:1")
    kwargs = measured[2][1]
    assert kwargs["compare_reference"] is True and kwargs["precision"] == "fp16"
    assert isinstance(kwargs["timer"], torchgpu.CudaEventTimer)  # device events time calls


def test_calls_are_timed_by_the_cuda_events(monkeypatch):
    from hwaccel.kit.measure import time_calls

    monkeypatch.setattr(torch.cuda, "Event", FakeCudaEvent)
    FakeCudaEvent.log.clear()
    timer = torchgpu.CudaEventTimer(torch)
    timing = time_calls(lambda: None, warmup=2, min_iterations=4, min_seconds=0.0,
                        max_seconds=5.0, timer=timer)
    # every timed call (the cold one and 4 more) is start..end of its own events: 2.5 ms
    assert timing.cold_ms == 2.5 and timing.times_ms == (2.5,) * 4
    assert FakeCudaEvent.log == ["record", "record", "synchronize"] * 5  # warm-up is not timed


def test_fp16_on_a_gpu_without_it_falls_back_to_fp32_with_the_reason(monkeypatch, measured):
    patch_torch(monkeypatch, [M60])
    result = hwaccel_benchmark(request=request_for(0, "fp16"))
    assert result.success and result.precision == "fp32"
    assert measured[2][1]["precision"] == "fp32"
    assert result.details["precision_note"] == (
        "fp16 requested but cuda:0 has compute capability 5.2; native fp16 needs 5.3; ran fp32")


def test_bf16_without_native_support_falls_back(monkeypatch):
    patch_torch(monkeypatch, [T4])
    problem = cuda_bench.precision_problem(torch, 0, "bf16")
    assert "no native bf16" in problem and "7.5" in problem
    assert cuda_bench.precision_problem(torch, 0, "fp16") is None
    assert torchgpu.choose_precision("bf16", problem) == ("fp32", f"bf16 requested but "
                                                                  f"{problem}; ran fp32")
    assert torchgpu.choose_precision("fp16", None) == ("fp16", None)


@pytest.mark.parametrize("index", [2, -1])
def test_an_index_beyond_the_visible_devices_is_a_clear_failure(monkeypatch, measured, index):
    patch_torch(monkeypatch, [H100, T4])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = hwaccel_benchmark(request=request_for(index))
    assert not result.success and result.error_category == "unavailable"
    assert result.error == (f"device index {index} is out of range: torch.cuda.device_count() "
                            "is 2 (CUDA_VISIBLE_DEVICES='3,5'); the detection may be stale "
                            "(run `hwaccel detect --refresh`)")
    assert measured == []  # nothing ran


def test_out_of_memory_is_its_own_failure_category(monkeypatch, measured):
    patch_torch(monkeypatch, [T4])
    import hwaccel.kit.measure

    def oom(request, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(hwaccel.kit.measure, "benchmark_workload", oom)
    result = hwaccel_benchmark(request=request_for(0))
    assert (result.success, result.error_category) == (False, "out-of-memory")
    assert result.error == "cuda:0: CUDA out of memory. Tried to allocate 2.00 GiB"


@cpu_torch
def test_benchmark_on_this_machine_fails_as_unavailable():
    result = hwaccel_benchmark(request=request_for(0))
    assert (result.success, result.error_category) == (False, "unavailable")
    assert result.error.startswith("torch.cuda.is_available() is False in the job process: "
                                   "Torch not compiled with CUDA enabled")


def test_other_backends_requests_are_not_answered():
    assert hwaccel_benchmark(request=request_for(0, backend="cpu")) is None
    assert hwaccel_template(backend="rocm") is None


def test_inputs_move_with_floating_tensors_cast_and_ids_kept():
    inputs = {"input_ids": torch.ones(2, 3, dtype=torch.long),
              "pixel_values": torch.ones(2, 3), "nested": [torch.zeros(1)], "seed": 7}
    placed = torchgpu.move_inputs(inputs, torch.device("cpu"), torch.float16)
    assert placed["input_ids"].dtype == torch.long
    assert placed["pixel_values"].dtype == torch.float16
    assert placed["nested"][0].dtype == torch.float16 and placed["seed"] == 7


def test_device_memory_and_details_land_in_the_result():
    base = dict(model="m", backend="cuda", device="cuda:0", success=True)
    annotated = torchgpu.annotate(BenchmarkResult(**base, details={"kept": 1}),
                                  device_peak_bytes=3 * 2**20, details={"precision_note": "x"})
    assert annotated.device_peak_mb == 3.0
    assert annotated.details == {"kept": 1, "precision_note": "x"}


# -- template and CLI -------------------------------------------------------------------------


def test_snippets_fill_every_slot():
    part = hwaccel_template(backend="cuda")
    assert part.owner == "backend" and part.name == "cuda"
    assert set(BACKEND_SLOTS) <= set(part.snippets) and part.snippets == SNIPPETS
    namespace: dict[str, Any] = {}
    exec(SNIPPETS["tolerance"], namespace)  # noqa: S102 - our own snippet
    assert (namespace["ATOL"], namespace["RTOL"]) == (1e-3, 1e-2)


def _availability() -> Any:
    namespace: dict[str, Any] = {"torch": torch}
    exec(SNIPPETS["availability"], namespace)  # noqa: S102 - our own snippet
    assert namespace["DEVICE"] == "cuda:0"
    return namespace["unavailable_reason"]


def test_generated_availability_check_uses_torch_cuda(monkeypatch):
    patch_torch(monkeypatch, [H100])
    assert _availability()() is None
    patch_torch(monkeypatch, [], init_error="CUDA driver version is insufficient")
    assert _availability()() == ("torch (CUDA 12.4) cannot use CUDA: CUDA driver version is "
                                 "insufficient")
    patch_torch(monkeypatch, [], cuda=None, hip="6.2.1")
    assert _availability()().endswith("is a ROCm (HIP 6.2.1) build: AMD GPUs are tested "
                                      "with --backend rocm")


@cpu_torch
def test_generated_test_skips_with_the_real_reason(tmp_path):
    assert_generated_tests_skip("cuda", f"torch {torch.__version__} is a CPU-only build "
                                        "(torch.version.cuda is None): no CUDA", tmp_path)


@cpu_torch
def test_cli_benchmark_records_cuda_as_unavailable(tmp_db):
    assert_benchmark_unavailable("cuda", tmp_db, f"torch {torch.__version__} is a CPU-only build")
