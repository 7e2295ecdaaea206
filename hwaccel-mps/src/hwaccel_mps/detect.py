"""MPS detection from torch.backends.mps, the macOS version, sysctl and psutil.

Apple silicon shares one memory between CPU and GPU, so the device's memory is the machine's
(psutil); torch's recommended working-set size for Metal is reported beside it. Whether
``PYTORCH_ENABLE_MPS_FALLBACK`` is set is reported too: with it, operators that MPS lacks run
on the CPU without an error, so a measurement may include CPU work.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Callable
from typing import Any

from hwaccel import HardwareInfo

NAME = "mps"
FALLBACK_ENV = "PYTORCH_ENABLE_MPS_FALLBACK"


def cpu_fallback() -> dict[str, Any]:
    """Whether torch runs operators missing on MPS on the CPU instead of raising.

    torch reads ``PYTORCH_ENABLE_MPS_FALLBACK`` as an integer when it loads: unset or 0
    keeps the error, any other integer enables the fallback.
    """
    raw = os.environ.get(FALLBACK_ENV)
    try:
        enabled: bool | None = raw is not None and int(raw.strip()) != 0
    except ValueError:
        enabled = None
    if enabled is None:
        note = f"{FALLBACK_ENV}={raw!r} is not an integer, which torch requires"
    elif enabled:
        note = (f"{FALLBACK_ENV}={raw}: operators MPS lacks run on the CPU silently, so "
                "timings may include CPU work")
    else:
        note = f"{FALLBACK_ENV} is unset or 0: an operator MPS lacks raises NotImplementedError"
    return {"cpu_fallback": enabled, "cpu_fallback_env": raw, "cpu_fallback_note": note}


def sysctl(key: str) -> str | None:
    """The value of a macOS ``sysctl`` key, or ``None`` when it cannot be read."""
    try:
        proc = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


def chip_name() -> str | None:
    """The Apple chip (``Apple M2 Pro``) from sysctl, else ``platform.processor()``."""
    return sysctl("machdep.cpu.brand_string") or platform.processor() or None


def _optional(call: Callable[[], Any], errors: dict[str, str], key: str) -> Any:
    """``call()``, or ``None`` with the error kept in ``errors`` (an extra detail only)."""
    try:
        return call()
    except Exception as exc:  # a detail torch cannot give is reported, not fatal
        errors[key] = f"{type(exc).__name__}: {exc}"
        return None


def unavailable(reason: str, details: dict[str, Any]) -> HardwareInfo:
    """The one record reporting MPS absent, with ``reason``."""
    return HardwareInfo(backend=NAME, device=NAME, name="Apple MPS", available=False,
                        reason=reason, details=details)


def detect_mps() -> HardwareInfo:
    """Return the MPS device, or why there is none (not macOS, torch without MPS, ...)."""
    system, machine = platform.system(), platform.machine()
    mac_version = platform.mac_ver()[0] if system == "Darwin" else None
    details: dict[str, Any] = {"system": system, "machine": machine, "macos": mac_version,
                               **cpu_fallback()}
    not_macos = None if system == "Darwin" else (
        f"MPS needs macOS on Apple silicon; this is {system} {machine}")
    try:
        details["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return unavailable("; ".join(filter(None, (not_macos, "torch is not installed"))),
                           details)
    import torch

    built = torch.backends.mps.is_built()
    details["mps_built"] = built
    if not_macos or not built:
        without = None if built else (f"torch {torch.__version__} is built without MPS "
                                      "(torch.backends.mps.is_built() is False)")
        return unavailable("; ".join(filter(None, (not_macos, without))), details)
    if not torch.backends.mps.is_available():
        return unavailable(f"torch.backends.mps.is_available() is False on macOS "
                           f"{mac_version or '?'} ({machine}): MPS needs macOS 12.3 or newer "
                           "and a Metal GPU", details)
    errors: dict[str, str] = {}
    chip = chip_name()
    bf16 = _optional(lambda: torch.backends.mps.is_macos_or_newer(14, 0), errors, "bf16")
    details.update(
        chip=chip,
        metal_device=_optional(torch.backends.mps.get_name, errors, "metal_device"),
        gpu_cores=_optional(torch.backends.mps.get_core_count, errors, "gpu_cores"),
        recommended_max_memory_bytes=_optional(torch.mps.recommended_max_memory, errors,
                                               "recommended_max_memory"),
        unified_memory=True)
    if errors:
        details["detail_errors"] = errors
    import psutil

    memory = psutil.virtual_memory()
    return HardwareInfo(backend=NAME, device=NAME, torch_device=NAME, available=True,
                        name=details["metal_device"] or chip or "Apple GPU",
                        memory_total_bytes=memory.total, memory_available_bytes=memory.available,
                        capabilities=("fp32", "fp16", *(("bf16",) if bf16 else ())),
                        details=details, compute_resource="mps")
