"""Provenance stamped on every measurement: library versions and a hardware fingerprint."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform

from hwaccel.types import HardwareInfo

_VERSIONED = ("hwaccel-core", "torch", "transformers", "numpy", "diffusers", "openvino",
              "onnxruntime")


def library_versions(extra: tuple[str | None, ...] = ()) -> dict[str, str]:
    """Return the versions of the libraries that shape a measurement."""
    versions = {"python": platform.python_version()}
    for name in (*_VERSIONED, *extra):
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
