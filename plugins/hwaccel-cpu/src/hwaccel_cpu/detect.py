"""CPU detection from psutil, py-cpuinfo and the installed torch."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from hwaccel import HardwareInfo

# py-cpuinfo flag -> capability name reported by hwaccel
ISA_FLAGS = {"avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c",
             "avx512f": "avx512", "avx512_bf16": "avx512_bf16", "avx512_vnni": "avx512_vnni",
             "avx512vnni": "avx512_vnni", "amx_bf16": "amx_bf16", "amx_int8": "amx_int8",
             "amx_tile": "amx", "neon": "neon", "asimd": "neon", "sve": "sve"}


def _torch_details() -> dict[str, Any]:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return {"torch": None, "torch_reason": "torch is not installed"}
    import torch

    return {"torch": version, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads()}


def detect_cpu() -> HardwareInfo:
    """Return the host CPU with its cores, ISA capabilities and memory."""
    import cpuinfo
    import psutil

    info = cpuinfo.get_cpu_info()
    flags = set(info.get("flags", []))
    capabilities = tuple(sorted({cap for flag, cap in ISA_FLAGS.items() if flag in flags}))
    memory = psutil.virtual_memory()
    details: dict[str, Any] = {
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "arch": info.get("arch_string_raw") or platform.machine(),
        "vendor": info.get("vendor_id_raw"),
        "hz_advertised": info.get("hz_advertised_friendly"),
        "l3_cache_bytes": info.get("l3_cache_size"),
        "isa": {cap: cap in capabilities for cap in ("avx", "avx2", "avx512", "amx")},
        **_torch_details(),
    }
    return HardwareInfo(backend="cpu", device="cpu", torch_device="cpu",
                        name=info.get("brand_raw") or
                        platform.processor() or "cpu", available=True,
                        memory_total_bytes=memory.total,
                        memory_available_bytes=memory.available,
                        capabilities=("fp32", *capabilities), details=details)
