"""Device selection by priority: indices, fallback chains and their reasons, bad names.

The detection reports are built from HardwareInfo records here, the way backend plugins
return them (the backends' declarations are those of the installed plugins); the last test
selects from this machine's real detection.
"""

from __future__ import annotations

import json
import logging

import pytest

from hwaccel.errors import UsageError
from hwaccel.hardware.detection import DetectionReport
from hwaccel.hardware.devices import (
    DeviceChoice,
    HardwareDetector,
    NoDeviceError,
    default_priority,
    select_device,
    torch_priority,
)
from hwaccel.plugins import HookError
from hwaccel.types import HardwareInfo

NO_CUDA = "torch 2.13.0+cpu has no CUDA"


def gpu(backend: str, index: int, *, available: bool = True,
        reason: str | None = None) -> HardwareInfo:
    return HardwareInfo(backend=backend, device=f"cuda:{index}", name=f"GPU {index}",
                        available=available, reason=reason, index=index,
                        memory_total_bytes=80 * 2**30)


def absent(backend: str, reason: str) -> HardwareInfo:
    return HardwareInfo(backend=backend, device=backend, name=backend, available=False,
                        reason=reason)


OPENVINO_RANKS = {"GPU": 0, "CPU": 1, "NPU": 2}  # OpenVINO's AUTO order


def openvino(device: str) -> HardwareInfo:
    """A record as the OpenVINO backend writes it: ``device`` is OpenVINO's device name, the
    device string ``openvino:NAME`` and the rank its place in OpenVINO's AUTO order."""
    kind, _, number = device.partition(".")
    return HardwareInfo(backend="openvino", device=device, name=f"OpenVINO {device}",
                        available=True, index=int(number) if number else 0,
                        device_string=f"openvino:{device}", rank=OPENVINO_RANKS[kind])


CPU = HardwareInfo(backend="cpu", device="cpu", name="AMD EPYC", available=True)


def report(*records: HardwareInfo, errors: tuple[HookError, ...] = ()) -> DetectionReport:
    return DetectionReport(hardware=list(records), errors=list(errors))


def test_the_preferred_gpu_index_is_used_when_it_exists():
    two = report(gpu("cuda", 0), gpu("cuda", 1), CPU)
    second = select_device(two, ["cuda", "cpu"], preferred_index=1)
    assert (second.backend, second.device, second.index) == ("cuda", "cuda:1", 1)
    assert second.fallbacks == () and second.hardware.name == "GPU 1"
    assert select_device(two).device == "cuda:0"


def test_a_missing_index_falls_back_to_the_first_device_and_says_so():
    one = report(gpu("cuda", 0), CPU)
    choice = select_device(one, ["cuda", "mps", "cpu"], preferred_index=1)
    assert choice.device == "cuda:0"
    assert choice.fallbacks == ("cuda:1 requested but only 1 device; using cuda:0",)
    three = report(gpu("cuda", 0), gpu("cuda", 1), gpu("cuda", 2), CPU)
    assert select_device(three, preferred_index=5).fallbacks == (
        "cuda:5 requested but only 3 devices; using cuda:0",)


def test_an_unavailable_preferred_device_gives_its_own_reason():
    busy = report(gpu("cuda", 0), gpu("cuda", 1, available=False, reason="MIG mode"), CPU)
    choice = select_device(busy, preferred_index=1)
    assert choice.device == "cuda:0"
    assert choice.fallbacks == ("cuda:1 unavailable — MIG mode; using cuda:0",)


def test_absent_cuda_falls_to_openvino_with_every_reason_in_order():
    rep = report(absent("cuda", NO_CUDA), absent("mps", "not a macOS arm64 machine"),
                 openvino("CPU"), CPU)
    choice = select_device(rep)
    assert (choice.backend, choice.device, choice.openvino_device) == (
        "openvino", "openvino:CPU", "CPU")
    assert not choice.is_torch
    assert choice.fallbacks[0] == f"cuda: absent — {NO_CUDA}"
    assert choice.fallbacks[1].startswith("rocm: not detected — no loaded plugin reported it")
    assert "hwaccel-rocm" in choice.fallbacks[1]
    assert choice.fallbacks[2] == "mps: absent — not a macOS arm64 machine"
    assert len(choice.fallbacks) == 3


def test_absent_cuda_and_openvino_fall_to_the_cpu():
    rep = report(absent("cuda", NO_CUDA), absent("rocm", "torch is not a HIP build"),
                 absent("mps", "not macOS"), absent("openvino", "openvino is not installed"),
                 CPU)
    choice = select_device(rep)
    assert (choice.backend, choice.device, choice.index) == ("cpu", "cpu", 0)
    assert choice.is_torch and choice.openvino_device is None
    assert choice.fallbacks == (f"cuda: absent — {NO_CUDA}",
                                "rocm: absent — torch is not a HIP build",
                                "mps: absent — not macOS",
                                "openvino: absent — openvino is not installed")


def test_torch_priority_never_answers_openvino():
    rep = report(absent("cuda", NO_CUDA), openvino("GPU.0"), CPU)
    assert select_device(rep).device == "openvino:GPU.0"
    choice = select_device(rep, torch_priority(rep))
    assert choice.device == "cpu" and choice.is_torch
    assert default_priority(rep) == ("cuda", "rocm", "mps", "openvino", "cpu")
    assert torch_priority(rep) == ("cuda", "rocm", "mps", "cpu")


def test_openvino_prefers_a_gpu_then_the_cpu_then_an_npu():
    rep = report(openvino("NPU"), openvino("CPU"), openvino("GPU.0"), openvino("GPU.1"))
    assert select_device(rep, ["openvino"]).device == "openvino:GPU.0"
    assert select_device(rep, ["openvino"], preferred_index=1).device == "openvino:GPU.1"
    no_gpu = report(openvino("NPU"), openvino("CPU"))
    assert select_device(no_gpu, ["openvino"]).openvino_device == "CPU"
    only_npu = report(openvino("NPU"))
    assert select_device(only_npu, ["openvino"]).openvino_device == "NPU"
    prefixed = HardwareInfo(backend="openvino", device="openvino:GPU", name="GPU",
                            available=True)
    assert select_device(report(prefixed), ["openvino"]).device == "openvino:GPU"


def test_rocm_devices_are_torch_cuda_devices():
    rep = report(absent("cuda", NO_CUDA), gpu("rocm", 0), gpu("rocm", 1), CPU)
    choice = select_device(rep, preferred_index=1)
    assert (choice.backend, choice.device) == ("rocm", "cuda:1")
    assert choice.fallbacks == (f"cuda: absent — {NO_CUDA}",)


def test_a_detection_error_is_the_reason():
    rep = report(CPU, errors=(HookError("cuda", "hwaccel_detect", "NVMLError: driver gone"),))
    choice = select_device(rep, ["cuda", "cpu"])
    assert choice.fallbacks == ("cuda: detection failed — NVMLError: driver gone",)


def test_the_cpu_is_the_last_resort_and_its_absence_an_error():
    rep = report(absent("cuda", NO_CUDA), CPU)
    choice = select_device(rep, ["cuda"])
    assert choice.device == "cpu"
    assert choice.fallbacks == (f"cuda: absent — {NO_CUDA}",
                                "none of cuda has an available device; trying cpu, the last "
                                "resort")
    with pytest.raises(NoDeviceError, match="cuda: absent — .*cpu: not detected"):
        select_device(report(absent("cuda", NO_CUDA)), ["cuda"])


def test_backends_only_detection_knows_are_chosen_by_their_own_device_string():
    acme = HardwareInfo(backend="acme", device="acme-npu:0", name="ACME", available=True)
    choice = select_device(report(acme, CPU), ["ACME", "cpu"])
    assert (choice.backend, choice.device, choice.is_torch) == ("acme", "acme-npu:0", False)


@pytest.mark.parametrize(("names", "message"), [
    (["cuda", "cdua", "tpu"], r"unknown backend 'cdua', 'tpu' in priority_list;"
                              r" known backends: cpu, cuda, mps, openvino, qnn, rocm, web"),
    (["cuda:1"], "pass the device number as preferred_index"),
    ([], "priority_list is empty"),
    ([3], "backend names are strings"),
])
def test_bad_priority_lists_are_usage_errors(names, message):
    with pytest.raises(UsageError, match=message):
        select_device(report(gpu("cuda", 0), CPU), names)


@pytest.mark.parametrize("index", [-1, True, 1.0])
def test_a_bad_preferred_index_is_a_usage_error(index):
    with pytest.raises(UsageError, match="preferred_index must be a device number"):
        select_device(report(CPU), preferred_index=index)


def test_names_are_case_insensitive_and_duplicates_ignored():
    rep = report(absent("cuda", NO_CUDA), CPU)
    choice = select_device(rep, ["CUDA", "cuda", " Cpu "])
    assert choice.device == "cpu" and choice.fallbacks == (f"cuda: absent — {NO_CUDA}",)
    assert select_device(rep, "cpu").fallbacks == ()


def test_the_predecessor_api_returns_the_string_and_logs_each_fallback(caplog):
    detector = HardwareDetector(report(gpu("cuda", 0), absent("mps", "not macOS"), CPU))
    with caplog.at_level(logging.WARNING, logger="hwaccel.hardware.devices"):
        device = detector.get_torch_device_with_priority(priority_list=["mps", "cuda", "cpu"],
                                                         preferred_index=1)
    assert device == "cuda:0"
    assert [r.getMessage() for r in caplog.records] == [
        "device fallback: mps: absent — not macOS",
        "device fallback: cuda:1 requested but only 1 device; using cuda:0"]
    details = detector.get_cuda_details()
    assert details["available"] and details["reason"] is None
    assert details["device_count"] == 1
    assert details["devices"][0]["name"] == "GPU 0"
    mps = detector.get_details("MPS")
    assert (mps["available"], mps["device_count"]) == (False, 0)
    assert mps["reason"] == "mps: absent — not macOS"
    assert detector.is_available("cuda") and not detector.is_available("mps")


def test_a_choice_is_frozen_and_json_safe():
    choice = select_device(report(absent("cuda", NO_CUDA), CPU))
    assert isinstance(choice, DeviceChoice) and str(choice) == "cpu"
    with pytest.raises(AttributeError):
        choice.device = "cuda:0"  # type: ignore[misc]
    data = json.loads(json.dumps(choice.to_dict()))
    assert data["device"] == "cpu" and data["fallbacks"][0] == f"cuda: absent — {NO_CUDA}"
    assert data["hardware"]["backend"] == "cpu"


def test_this_machines_detection_gives_a_device_torch_accepts():
    import torch

    detector = HardwareDetector(refresh=True)
    choice = detector.select_device(torch_priority(detector.detect()))
    assert torch.device(choice.device).type == ("cuda" if choice.backend in ("cuda", "rocm")
                                                else choice.backend)
    if not torch.cuda.is_available():
        assert choice.backend not in ("cuda", "rocm")
        assert any(line.startswith("cuda: ") for line in choice.fallbacks)
