"""Hardware detection through the backend plugins, cached on disk.

Detection can take seconds (py-cpuinfo, importing torch, starting a browser), so its answer
is cached in the hwaccel cache folder. The cache is used only while the same plugins at the
same versions are loaded; ``refresh=True`` (``hwaccel detect --refresh``) always re-detects.
A corrupt cache file is ignored and rewritten.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel import jsoncache, paths
from hwaccel.plugins import HookError, Plugins
from hwaccel.types import HardwareInfo

_FORMAT = 3  # 2: HardwareInfo.converted_weights; 3: converted_unties_weights
# Settings that choose where results go or how plugins load, not what detection finds (the
# loaded plugins are part of the key already).
_NOT_DETECTION_SETTINGS = frozenset({
    "HWACCEL_DB", "HWACCEL_CACHE_DIR", "HWACCEL_LOAD_PLUGINS", "HWACCEL_DISABLE_PLUGINS",
    "HWACCEL_STRICT_PLUGINS", "HWACCEL_TRACE_PLUGINS", "HWACCEL_BATCH_SIZE", "HWACCEL_SEQ_LEN",
    "HWACCEL_DEVICE"})


@dataclass
class DetectionReport:
    """The devices found, the plugins' detection errors, and whether it came from the cache."""

    hardware: list[HardwareInfo]
    errors: list[HookError] = field(default_factory=list)
    cached: bool = False
    timestamp: str = ""
    cache_file: str = ""

    def available(self, backend: str) -> list[HardwareInfo]:
        """Return the available devices of ``backend``."""
        return [h for h in self.hardware if h.backend == backend and h.available]

    def check_backends(self, backends: list[str]) -> list[str]:
        """``backends`` without repeats; raise :class:`UsageError` for one detection does
        not know."""
        from hwaccel.errors import UsageError

        known = {h.backend for h in self.hardware}
        unknown = [b for b in backends if b not in known]
        if unknown:
            raise UsageError(f"unknown backend {', '.join(map(repr, unknown))} "
                             f"(detected backends: {', '.join(sorted(known)) or 'none'})")
        return list(dict.fromkeys(backends))

    def to_dict(self) -> dict:
        """Return a JSON-safe dict of the report."""
        return {"timestamp": self.timestamp, "cached": self.cached,
                "cache_file": self.cache_file,
                "hardware": [h.to_dict() for h in self.hardware],
                "errors": [{"plugin": e.plugin, "hook": e.hook, "message": e.message}
                           for e in self.errors]}


def cache_file() -> Path:
    """Return the path of the detection cache file."""
    return paths.cache_dir() / "detect.json"


def _cache_key(plugins: Plugins) -> list[Any]:
    """The loaded plugins and versions, the versions of what their distributions require
    (installing ``onnxruntime-qnn`` for ``hwaccel-qnn``), and the ``HWACCEL_*`` settings that
    steer detection (``HWACCEL_CHROMIUM``, ``HWACCEL_QNN_BACKEND_PATH``, ...): changing any
    re-detects."""
    settings = sorted([k, v] for k, v in os.environ.items()
                      if k.startswith("HWACCEL_") and k not in _NOT_DETECTION_SETTINGS)
    loaded = plugins.loaded()
    required = sorted({name for record in loaded for name in _requirements(record.distribution)})
    return sorted([r.name, r.version] for r in loaded) + [
        ["requires", *([name, _version(name)] for name in required)], ["env", *settings]]


def _requirements(distribution: str | None) -> list[str]:
    """The names of the distributions ``distribution`` requires (extras' ones included)."""
    import importlib.metadata
    import re

    try:
        requires = importlib.metadata.requires(distribution) if distribution else None
    except importlib.metadata.PackageNotFoundError:
        return []
    return [re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
            for requirement in requires or []]


def _version(distribution: str) -> str | None:
    """The installed version of a distribution, ``None`` when it is not installed."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def detect(plugins: Plugins, *, refresh: bool = False,
           path: Path | None = None) -> DetectionReport:
    """Return the hardware of every loaded backend plugin, from the cache unless stale.

    :param path: the cache file (default :func:`cache_file`).
    """
    path = Path(path).expanduser() if path is not None else cache_file()
    key = _cache_key(plugins)
    data = None if refresh else jsoncache.read(path)
    if isinstance(data, dict) and data.get("format") == _FORMAT and data.get("key") == key:
        try:
            return DetectionReport(
                hardware=[HardwareInfo.from_dict(h) for h in data["hardware"]],
                errors=[HookError(**e) for e in data["errors"]], cached=True,
                timestamp=data["timestamp"], cache_file=str(path))
        except (KeyError, TypeError):
            pass  # a damaged cache is re-detected below
    results, errors = plugins.call_each("hwaccel_detect")
    hardware = [info for _, infos in results for info in infos]
    timestamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    jsoncache.write(path, {"format": _FORMAT, "key": key, "timestamp": timestamp,
                           "hardware": [h.to_dict() for h in hardware],
                           "errors": [vars(e) for e in errors]})
    return DetectionReport(hardware=hardware, errors=errors, cached=False,
                           timestamp=timestamp, cache_file=str(path))
