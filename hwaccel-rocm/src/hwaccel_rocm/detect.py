"""AMD GPU detection: HIP builds of torch for the devices, amdsmi for the driver's view.

A ROCm build of torch sets ``torch.version.hip`` and answers for AMD GPUs through the
``torch.cuda`` API: names, the GCN architecture (``gcnArchName``, e.g. ``gfx942:sramecc+:
xnack-``), memory (free memory from ``torch.cuda.mem_get_info``) and compute units. amdsmi,
when installed (it ships with ROCm), adds the driver version, VRAM used and total as the
driver counts them (other processes included) and activity; a missing or failing amdsmi
leaves the torch detection whole and says so in the details. amdsmi devices are matched to
torch's by PCI address, since ``HIP_VISIBLE_DEVICES``, ``ROCR_VISIBLE_DEVICES`` and
``CUDA_VISIBLE_DEVICES`` renumber torch's devices but not amdsmi's.

Precision capabilities: ``fp16`` on every GPU ROCm supports (GCN 5 and newer have packed
half arithmetic); ``bf16`` as ``torch.cuda.is_bf16_supported()`` says for the device (on
ROCm builds torch answers True for every GPU it supports).
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
    parse_bdf,
    torch_device_fields,
    visible_devices,
)

NAME = "rocm"
#: variables that choose the GPUs a HIP process sees (ROCR at the runtime level, HIP and
#: CUDA at the HIP level)
ENV_NAMES = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


@dataclass
class AmdSmiReport:
    """What amdsmi said: one record per AMD GPU, or why it said nothing."""

    driver_version: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    def summary(self) -> str:
        """One clause for an unavailability reason: what amdsmi sees, or why it cannot."""
        if self.note and not self.devices:
            return f"amdsmi: {self.note}"
        count = len(self.devices)
        return (f"amdsmi sees {count} AMD GPU{'s' if count != 1 else ''} "
                f"(driver {self.driver_version})")


def read_amdsmi() -> AmdSmiReport:
    """Query amdsmi for every AMD GPU; never raises (failures become the note)."""
    try:
        import amdsmi
    except ImportError:
        return AmdSmiReport(note="amdsmi not installed (it ships with ROCm: "
                                 "/opt/rocm/share/amd_smi)")
    try:
        amdsmi.amdsmi_init()
    except Exception as exc:  # noqa: BLE001 - AmdSmiLibraryException: driver not loaded...
        return AmdSmiReport(note=f"amdsmi_init failed: {first_line(exc)}")
    report = AmdSmiReport()
    try:
        for handle in amdsmi.amdsmi_get_processor_handles():
            report.devices.append(_amdsmi_device(amdsmi, handle))
    except Exception as exc:  # noqa: BLE001 - whatever was read is kept
        report.note = f"amdsmi query failed: {first_line(exc)}"
    finally:
        try:
            amdsmi.amdsmi_shut_down()
        except Exception:  # noqa: BLE001, S110 - nothing to do about a failed shutdown
            pass
    versions = {d.get("driver_version") for d in report.devices} - {None}
    report.driver_version = ", ".join(sorted(versions)) or None
    return report


def _amdsmi_device(amdsmi: Any, handle: Any) -> dict[str, Any]:
    """One amdsmi GPU: PCI address, name, driver, VRAM and activity (failures noted)."""
    record: dict[str, Any] = {"pci": parse_bdf(amdsmi.amdsmi_get_gpu_device_bdf(handle))}
    errors = []
    try:
        asic = amdsmi.amdsmi_get_gpu_asic_info(handle)
        record["market_name"] = asic.get("market_name")
        record["target_graphics_version"] = asic.get("target_graphics_version")
    except Exception as exc:  # noqa: BLE001
        errors.append(f"asic: {first_line(exc)}")
    try:
        record["driver_version"] = amdsmi.amdsmi_get_gpu_driver_info(handle).get(
            "driver_version")
    except Exception as exc:  # noqa: BLE001
        errors.append(f"driver: {first_line(exc)}")
    try:
        vram = amdsmi.AmdSmiMemoryType.VRAM
        total = int(amdsmi.amdsmi_get_gpu_memory_total(handle, vram))
        used = int(amdsmi.amdsmi_get_gpu_memory_usage(handle, vram))
        record.update(vram_total_bytes=total, vram_used_bytes=used,
                      vram_free_bytes=max(total - used, 0))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"vram: {first_line(exc)}")
    try:
        record["gfx_activity_percent"] = amdsmi.amdsmi_get_gpu_activity(handle).get(
            "gfx_activity")
    except Exception as exc:  # noqa: BLE001 - not supported on every GPU
        errors.append(f"activity: {first_line(exc)}")
    if errors:
        record["errors"] = errors
    return record


def _absent(reason: str, details: dict[str, Any]) -> list[HardwareInfo]:
    return [HardwareInfo(backend=NAME, device=NAME, name="AMD GPU (ROCm)", available=False,
                         reason=reason, details=details)]


def detect_rocm() -> list[HardwareInfo]:
    """Return one record per visible AMD GPU, or one unavailable record with the reason."""
    env = visible_devices(ENV_NAMES)
    smi = read_amdsmi()
    common: dict[str, Any] = {"visible_devices": env, "amdsmi_driver_version":
                              smi.driver_version, "amdsmi_note": smi.note}
    torch, problem = import_torch()
    if torch is None:
        return _absent(f"{problem}; {smi.summary()}", {**common, "torch": None})
    version = torch.__version__
    hip = getattr(torch.version, "hip", None)
    common.update(torch=version, hip_version=hip)
    if not hip:
        kind = (f"a CUDA {torch.version.cuda} build: NVIDIA devices are reported by the cuda "
                "backend" if torch.version.cuda else "not a ROCm build")
        return _absent(f"torch {version} is {kind} (torch.version.hip is None); "
                       f"{smi.summary()}", common)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        error = init_error(torch)
        cause = f"cannot use a GPU: {error}" if error else f"sees no AMD GPU{describe_env(env)}"
        return _absent(f"torch {version} (HIP {hip}) {cause}; {smi.summary()}", common)
    common.update(miopen_version=_miopen_version(torch), device_count=count)
    return [_device(torch, i, smi, common) for i in range(count)]


def _miopen_version(torch: Any) -> int | None:
    """On ROCm builds ``torch.backends.cudnn`` is MIOpen."""
    try:
        return torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        return None


def _device(torch: Any, index: int, smi: AmdSmiReport, common: dict[str, Any]) -> HardwareInfo:
    """One available AMD GPU, or an unavailable record when torch cannot read it."""
    try:
        fields = torch_device_fields(torch, index)
        bf16 = bf16_native(torch, index)
    except Exception as exc:  # noqa: BLE001 - one broken device does not hide the others
        return HardwareInfo(backend=NAME, device=f"cuda:{index}", name=f"cuda:{index}",
                            torch_device=f"cuda:{index}",
                            available=False, index=index, details=common,
                            reason=f"torch cannot read HIP device {index}: {first_line(exc)}")
    arch_name = getattr(fields["props"], "gcnArchName", None) or None
    details = {**common, "gcn_arch_name": arch_name,
               "gfx_arch": arch_name.split(":")[0] if arch_name else None,
               "compute_units": fields["multiprocessor_count"],
               "pci_bus_id": fields["pci_bus_id"], "memory_source": "torch.cuda.mem_get_info"}
    free = fields["memory_free_bytes"]
    smi_device = match_record(smi.devices, fields["pci"], None)
    if smi_device is not None:
        details["amdsmi"] = {k: v for k, v in smi_device.items() if k != "pci"}
    elif smi.devices:
        details["amdsmi_note"] = "no amdsmi device has this device's PCI address"
    if fields["memory_note"]:
        details["memory_note"] = fields["memory_note"]
        free = smi_device.get("vram_free_bytes") if smi_device else None
        details["memory_source"] = "amdsmi" if free is not None else None
    capabilities = ("fp32", "fp16", "bf16") if bf16 else ("fp32", "fp16")
    return HardwareInfo(backend=NAME, device=f"cuda:{index}", name=fields["name"],
                        torch_device=f"cuda:{index}", available=True, index=index,
                        memory_total_bytes=fields["memory_total_bytes"],
                        memory_available_bytes=free, capabilities=capabilities,
                        details=details,
                        compute_resource=f"gpu:{fields['pci_bus_id'] or index}")
