"""NVIDIA GPU detection: torch.cuda for the devices, NVML (``pynvml``) for the driver's view.

torch decides what is usable: a CUDA build of torch and ``torch.cuda.is_available()``. For
each device it gives the name, memory (free memory from ``torch.cuda.mem_get_info``),
compute capability and multiprocessor count, and the CUDA and cuDNN versions. NVML, when
``nvidia-ml-py`` is installed, adds the driver version, memory used and free as the driver
counts them (other processes included) and utilisation; a missing or failing NVML leaves
the torch detection whole and says so in the details. NVML devices are matched to torch's
by PCI address (else UUID), since ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER``
renumber torch's devices but not NVML's.

Precision capabilities (what ``hwaccel benchmark --precision`` can run natively):

* ``fp16``: compute capability 5.3 or newer (native half arithmetic);
* ``tensor_cores``: 7.0 or newer (fp16 matrix units);
* ``tf32``: 8.0 or newer;
* ``bf16``: ``torch.cuda.is_bf16_supported(including_emulation=False)`` for the device
  (8.0 or newer); emulated bf16 on older GPUs does not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwaccel import HardwareInfo
from hwaccel.kit.torchgpu import (
    bf16_native,
    describe_env,
    first_line,
    import_torch,
    init_error,
    match_record,
    normal_uuid,
    parse_bdf,
    torch_device_fields,
    visible_devices,
)

NAME = "cuda"
#: variables that choose and order the GPUs torch sees
ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
FP16_MIN_CAPABILITY = (5, 3)
TENSOR_CORE_MIN_CAPABILITY = (7, 0)
TF32_MIN_CAPABILITY = (8, 0)


@dataclass
class NvmlReport:
    """What NVML said: driver versions and one record per GPU, or why it said nothing."""

    driver_version: str | None = None
    cuda_driver_version: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    def summary(self) -> str:
        """One clause for an unavailability reason: what NVML sees, or why it cannot."""
        if self.note and not self.devices:
            return f"NVML: {self.note}"
        count = len(self.devices)
        return (f"NVML sees {count} NVIDIA GPU{'s' if count != 1 else ''} "
                f"(driver {self.driver_version})")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _cuda_version(code: Any) -> str | None:
    """NVML's CUDA driver version 12040 -> ``"12.4"``."""
    if not isinstance(code, int) or code <= 0:
        return None
    return f"{code // 1000}.{code % 1000 // 10}"


def read_nvml() -> NvmlReport:
    """Query NVML for the driver and every GPU; never raises (failures become the note)."""
    try:
        import pynvml
    except ImportError:
        return NvmlReport(note="pynvml not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded...
        return NvmlReport(note=f"nvmlInit failed: {first_line(exc)}")
    report = NvmlReport()
    try:
        report.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
        try:
            report.cuda_driver_version = _cuda_version(pynvml.nvmlSystemGetCudaDriverVersion())
        except Exception:  # noqa: BLE001, S110 - old drivers lack it; the version is optional
            pass
        for i in range(pynvml.nvmlDeviceGetCount()):
            report.devices.append(_nvml_device(pynvml, i))
    except Exception as exc:  # noqa: BLE001 - whatever was read is kept
        report.note = f"NVML query failed: {first_line(exc)}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110 - nothing to do about a failed shutdown
            pass
    return report


def _nvml_device(pynvml: Any, i: int) -> dict[str, Any]:
    """One NVML device: identity, memory and utilisation (a query that fails is noted)."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(i)
    record: dict[str, Any] = {"nvml_index": i, "name": _text(pynvml.nvmlDeviceGetName(handle))}
    errors = []
    try:
        pci = pynvml.nvmlDeviceGetPciInfo(handle)
        record["pci"] = parse_bdf(getattr(pci, "busId", None))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"pci: {first_line(exc)}")
    try:
        record["uuid"] = normal_uuid(pynvml.nvmlDeviceGetUUID(handle))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"uuid: {first_line(exc)}")
    try:
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        record.update(memory_total_bytes=int(memory.total), memory_used_bytes=int(memory.used),
                      memory_free_bytes=int(memory.free))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"memory: {first_line(exc)}")
    try:
        rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
        record.update(utilization_gpu_percent=int(rates.gpu),
                      utilization_memory_percent=int(rates.memory))
    except Exception as exc:  # noqa: BLE001 - NotSupported on some boards
        errors.append(f"utilization: {first_line(exc)}")
    if errors:
        record["errors"] = errors
    return record


def _absent(reason: str, details: dict[str, Any]) -> list[HardwareInfo]:
    return [HardwareInfo(backend=NAME, device=NAME, name="NVIDIA GPU (CUDA)", available=False,
                         reason=reason, details=details)]


def _short_hip(version: str) -> str:
    """``"6.2.41133-dd7f95766"`` -> ``"6.2"``."""
    return ".".join(version.split("-")[0].split(".")[:2])


def detect_cuda() -> list[HardwareInfo]:
    """Return one record per visible NVIDIA GPU, or one unavailable record with the reason."""
    env = visible_devices(ENV_NAMES)
    nvml = read_nvml()
    common: dict[str, Any] = {"visible_devices": env, "nvml_driver_version": nvml.driver_version,
                              "nvml_cuda_driver_version": nvml.cuda_driver_version,
                              "nvml_note": nvml.note}
    torch, problem = import_torch()
    if torch is None:
        return _absent(f"{problem}; {nvml.summary()}", {**common, "torch": None})
    version = torch.__version__
    common.update(torch=version, cuda_version=torch.version.cuda)
    if getattr(torch.version, "hip", None):
        return _absent(f"torch is a ROCm (HIP {_short_hip(torch.version.hip)}) build: AMD "
                       f"devices are reported by the rocm backend; {nvml.summary()}",
                       {**common, "hip_version": torch.version.hip})
    if torch.version.cuda is None:
        return _absent(f"torch {version} is a CPU-only build (torch.version.cuda is None): "
                       f"no CUDA; {nvml.summary()}", common)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        error = init_error(torch)
        cause = (f"cannot use CUDA: {error}" if error
                 else f"sees no CUDA device{describe_env(env)}")
        return _absent(f"torch {version} (CUDA {torch.version.cuda}) {cause}; {nvml.summary()}",
                       common)
    common.update(cudnn_version=_cudnn_version(torch), device_count=count)
    return [_device(torch, i, nvml, common) for i in range(count)]


def _cudnn_version(torch: Any) -> int | None:
    try:
        return torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 - a broken cuDNN is reported as absent
        return None


def _device(torch: Any, index: int, nvml: NvmlReport, common: dict[str, Any]) -> HardwareInfo:
    """One available GPU, or an unavailable record when torch cannot read it."""
    try:
        fields = torch_device_fields(torch, index)
        capability = tuple(torch.cuda.get_device_capability(index))
        bf16 = bf16_native(torch, index)
    except Exception as exc:  # noqa: BLE001 - one broken device does not hide the others
        return HardwareInfo(backend=NAME, device=f"cuda:{index}", name=f"cuda:{index}",
                            torch_device=f"cuda:{index}",
                            available=False, index=index, details=common,
                            reason=f"torch cannot read cuda:{index}: {first_line(exc)}")
    capabilities = ["fp32"]
    if capability >= FP16_MIN_CAPABILITY:
        capabilities.append("fp16")
    if bf16:
        capabilities.append("bf16")
    if capability >= TF32_MIN_CAPABILITY:
        capabilities.append("tf32")
    if capability >= TENSOR_CORE_MIN_CAPABILITY:
        capabilities.append("tensor_cores")
    details = {**common, "compute_capability": f"{capability[0]}.{capability[1]}",
               "multiprocessor_count": fields["multiprocessor_count"],
               "pci_bus_id": fields["pci_bus_id"], "uuid": fields["uuid"],
               "memory_source": "torch.cuda.mem_get_info"}
    free = fields["memory_free_bytes"]
    nvml_device = match_record(nvml.devices, fields["pci"], fields["uuid"])
    if nvml_device is not None:
        details["nvml"] = {k: v for k, v in nvml_device.items() if k not in ("pci", "uuid")}
    elif nvml.devices:
        details["nvml_note"] = "no NVML device has this device's PCI address or UUID"
    if fields["memory_note"]:
        details["memory_note"] = fields["memory_note"]
        free = nvml_device.get("memory_free_bytes") if nvml_device else None
        details["memory_source"] = "nvml" if free is not None else None
    return HardwareInfo(backend=NAME, device=f"cuda:{index}", name=fields["name"],
                        torch_device=f"cuda:{index}", available=True, index=index,
                        memory_total_bytes=fields["memory_total_bytes"],
                        memory_available_bytes=free, capabilities=tuple(capabilities),
                        details=details,
                        compute_resource=f"gpu:{fields['pci_bus_id'] or index}")
