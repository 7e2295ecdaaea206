"""Provenance stamped on every measurement: library versions and a hardware fingerprint."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from typing import TYPE_CHECKING

from hwaccel.types import HardwareInfo

if TYPE_CHECKING:
    from hwaccel.hardware.backends import Backends

# The backend-neutral libraries; each backend declares its own (``BackendInfo.versions``).
_VERSIONED = ("hwaccel-core", "torch", "transformers", "numpy", "diffusers")


def library_versions(extra: tuple[str | None, ...] = (),
                     backends: Backends | None = None) -> dict[str, str]:
    """Return the versions of the libraries that shape a measurement: Python, the
    backend-neutral ones, those every declared backend names (``backends``, by default the
    process-wide plugins' declarations) and ``extra``; a library that is not installed is
    left out."""
    from hwaccel.hardware.backends import installed

    declared = (backends or installed()).versions()
    versions = {"python": platform.python_version()}
    for name in dict.fromkeys((*_VERSIONED, *declared, *extra)):
        if not name:
            continue
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(hardware: HardwareInfo) -> str:
    """Return a short stable hash of what identifies a device (not its free memory)."""
    key = {"backend": hardware.backend, "device": hardware.device, "name": hardware.name,
           "memory_total_bytes": hardware.memory_total_bytes,
           "capabilities": sorted(hardware.capabilities), "machine": platform.machine()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
