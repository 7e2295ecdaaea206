"""Detected hardware for plugins that shape a generated file by what is present."""

from __future__ import annotations

from hwaccel.types import HardwareInfo


def detected(backend: str) -> list[HardwareInfo]:
    """Return ``backend``'s detection records, as ``hwaccel detect`` reports them (cached)."""
    from hwaccel.hardware.detection import detect
    from hwaccel.plugins import get_plugins

    return [h for h in detect(get_plugins()).hardware if h.backend == backend]
