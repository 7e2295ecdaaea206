"""Hardware detection through the backend plugins, cached on disk.

Detection can take seconds (py-cpuinfo, importing torch, starting a browser), so its answer
is cached in the hwaccel cache folder. The cache is used only while it is younger than
:data:`CACHE_MAX_AGE_S` (an hour), the same plugins at the same versions are loaded, the
same distributions are installed (installing ``nvidia-ml-py`` or upgrading ``openvino``
re-detects) and the same ``*_VISIBLE_DEVICES`` and detection settings are set;
``refresh=True`` (``hwaccel detect --refresh``) always re-detects. Free memory is not taken
from the cache: a device that shares the host's memory (the CPU, OpenVINO's CPU, unified
memory) has it read again on every load. A corrupt cache file is ignored and rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hwaccel.hardware.backends import Backends, backends_of, installed
from hwaccel.kit import jsoncache, paths
from hwaccel.plugins import HookError, Plugins
from hwaccel.types import HardwareInfo

_FORMAT = 5  # 2: converted_weights; 3: converted_unties_weights; 4: installed, expiry;
# 5: torch_device, device_string, rank
CACHE_MAX_AGE_S = 3600  # a cached detection older than this is redone
# The variables that choose which devices a runtime sees: every NAME_VISIBLE_DEVICES
# (CUDA, HIP, ROCR, ...) and Intel Level Zero's mask.
_DEVICE_SELECTION_SUFFIX = "_VISIBLE_DEVICES"
_DEVICE_SELECTION = frozenset({"ZE_AFFINITY_MASK"})
# Settings that choose where results go or how plugins load, not what detection finds (the
# loaded plugins are part of the key already).
_NOT_DETECTION_SETTINGS = frozenset({
    "HWACCEL_DB", "HWACCEL_CACHE_DIR", "HWACCEL_LOAD_PLUGINS", "HWACCEL_DISABLE_PLUGINS",
    "HWACCEL_STRICT_PLUGINS", "HWACCEL_TRACE_PLUGINS", "HWACCEL_BATCH_SIZE", "HWACCEL_SEQ_LEN",
    "HWACCEL_DEVICE"})


@dataclass
class DetectionReport:
    """The devices found, the plugins' detection errors, and whether it came from the cache.

    ``backends`` holds what the loaded backend plugins declare about themselves (never
    cached on disk: :func:`detect` reads it from the plugins it detected with, and adds the
    declarations it refused to ``errors``); a report built without it reads the
    process-wide plugins' declarations on first use (:meth:`backend_facts`).
    """

    hardware: list[HardwareInfo]
    errors: list[HookError] = field(default_factory=list)
    cached: bool = False
    timestamp: str = ""
    cache_file: str = ""
    backends: Backends | None = None

    def available(self, backend: str) -> list[HardwareInfo]:
        """Return the available devices of ``backend``."""
        return [h for h in self.hardware if h.backend == backend and h.available]

    def backend_facts(self) -> Backends:
        """What the backends declare (:mod:`hwaccel.hardware.backends`)."""
        if self.backends is None:
            self.backends = installed()
        return self.backends

    def known_backends(self) -> list[str]:
        """Every backend a loaded plugin declares or detection reported, sorted: one whose
        detection raised is known too (its declaration exists)."""
        return sorted(set(self.backend_facts().known_names())
                      | {h.backend for h in self.hardware})

    def detection_error(self, backend: str) -> str | None:
        """The error the detection hook of ``backend``'s plugin raised, or ``None``."""
        info = self.backend_facts().infos.get(backend)
        plugin = info.plugin if info is not None and info.plugin else backend
        messages = [e.message for e in self.errors
                    if e.plugin == plugin and e.hook == "hwaccel_detect"]
        return "; ".join(messages) or None

    def check_backends(self, backends: list[str]) -> list[str]:
        """``backends`` without repeats; raise :class:`UsageError` for one no plugin declares
        and detection did not report."""
        from hwaccel.errors import UsageError

        known = set(self.known_backends())
        unknown = [b for b in backends if b not in known]
        if unknown:
            raise UsageError(f"unknown backend {', '.join(map(repr, unknown))} "
                             f"(known backends: {', '.join(sorted(known)) or 'none'})")
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
    """The loaded plugins and versions, every installed distribution (a plugin may probe for
    one it does not require, as hwaccel-cuda does for ``nvidia-ml-py``), the
    ``*_VISIBLE_DEVICES`` variables and the ``HWACCEL_*`` settings that steer detection
    (``HWACCEL_CHROMIUM``, ``HWACCEL_QNN_BACKEND_PATH``, ...): changing any re-detects."""
    settings = sorted([k, v] for k, v in os.environ.items()
                      if (k.startswith("HWACCEL_") and k not in _NOT_DETECTION_SETTINGS)
                      or k.endswith(_DEVICE_SELECTION_SUFFIX) or k in _DEVICE_SELECTION)
    installed = hashlib.sha256("\n".join(_installed_distributions()).encode()).hexdigest()
    return sorted([r.name, r.version] for r in plugins.loaded()) + [
        ["installed", installed], ["env", *settings]]


def _installed_distributions() -> list[str]:
    """The installed distributions with their versions: the ``*.dist-info`` and
    ``*.egg-info`` entries of the ``site-packages`` folders on ``sys.path``, sorted.

    Listing folders takes milliseconds where reading every distribution's metadata takes
    tenths of a second; an entry's name carries the distribution's version.
    """
    found: set[str] = set()
    for entry in sys.path:
        if Path(entry).name not in ("site-packages", "dist-packages"):
            continue
        try:
            found.update(name for name in os.listdir(entry)
                         if name.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    return sorted(found)


def _age_seconds(timestamp: str) -> float | None:
    """Seconds since ``timestamp`` (ISO 8601 with a zone), ``None`` when unreadable."""
    try:
        then = dt.datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:
        return None
    return (dt.datetime.now(dt.timezone.utc) - then).total_seconds()


def _with_live_host_memory(hardware: list[HardwareInfo]) -> list[HardwareInfo]:
    """``hardware`` with the host's free memory read now on each device whose memory is
    the host's (its total equals the host's total: the CPU, OpenVINO's CPU device, unified
    memory); other devices keep the free memory of the detection."""
    import psutil

    memory = psutil.virtual_memory()
    return [replace(h, memory_available_bytes=memory.available)
            if h.memory_total_bytes == memory.total and h.memory_available_bytes is not None
            else h for h in hardware]


def detect(plugins: Plugins, *, refresh: bool = False,
           path: Path | None = None) -> DetectionReport:
    """Return the hardware of every loaded backend plugin, from the cache unless stale
    (older than :data:`CACHE_MAX_AGE_S`, or another key: see :func:`_cache_key`).

    :param path: the cache file (default :func:`cache_file`).
    """
    path = Path(path).expanduser() if path is not None else cache_file()
    key = _cache_key(plugins)
    backends = backends_of(plugins)
    data = None if refresh else jsoncache.read(path)
    age = _age_seconds(data.get("timestamp")) if isinstance(data, dict) else None
    if (isinstance(data, dict) and data.get("format") == _FORMAT and data.get("key") == key
            and age is not None and 0 <= age < CACHE_MAX_AGE_S):
        try:
            return DetectionReport(
                hardware=_with_live_host_memory(
                    [HardwareInfo.from_dict(h) for h in data["hardware"]]),
                errors=[*(HookError(**e) for e in data["errors"]), *backends.errors],
                cached=True, timestamp=data["timestamp"], cache_file=str(path),
                backends=backends)
        except (KeyError, TypeError):
            pass  # a damaged cache is re-detected below
    results, errors = plugins.call_each("hwaccel_detect")
    hardware = [info for _, infos in results for info in infos]
    timestamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    jsoncache.write(path, {"format": _FORMAT, "key": key, "timestamp": timestamp,
                           "hardware": [h.to_dict() for h in hardware],
                           "errors": [vars(e) for e in errors]})
    return DetectionReport(hardware=hardware, errors=[*errors, *backends.errors],
                           cached=False, timestamp=timestamp, cache_file=str(path),
                           backends=backends)
