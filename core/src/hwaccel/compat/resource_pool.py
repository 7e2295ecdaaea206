"""The predecessor's ResourcePool: one shared instance of each model per device.

``get_global_resource_pool().get_model(family, name, constructor, hardware_preferences)``
returns the pool's instance of ``name`` on the device the preferences choose, building it
with ``constructor`` the first time. However many threads ask at once, the constructor
runs once per (model, device) and every caller gets the same object.

* **Placement** goes through hwaccel's detection and device selection
  (:func:`hwaccel.hardware.devices.select_device`): ``hardware_preferences`` is
  ``{"device": "cuda"}`` (or ``"cuda:1"``, ``"cpu"``...), or ``{"priority_list": [...],
  "preferred_index": 1}``; without preferences, the backends that run PyTorch modules in
  the default order (:func:`hwaccel.hardware.devices.torch_priority`). A PyTorch model is
  moved with ``model.to(device)``. Among several GPUs of the chosen
  backend, ``preferred_index`` is honoured when that GPU's free memory (as detected, less
  what the pool already placed there) holds the model, else the GPU with the most free
  memory that holds it is taken; when none does, or the chosen backend is not a PyTorch
  device (OpenVINO runs converted graphs, not modules), the model stays on the host (the
  ``torch_device`` of the last-resort backend's device: the CPU) and the reason is recorded
  (``stats()["fallbacks"]``). Other resources (tokenizers, processors) stay on the host.
* **Releasing**: an entry dropped from a torch accelerator gives the cached blocks of its
  device type back (``torch.<type>.empty_cache()``, for every device type whose torch module
  has one: CUDA and ROCm builds, MPS).
* **Accounting**: each entry's memory is the size of its unique parameters and buffers
  (for objects that are not modules: the growth of this process's resident memory while
  the constructor ran), summed per device.
* **Low-memory mode** (``RESOURCE_POOL_LOW_MEMORY=1`` or ``low_memory=True``): before a new
  entry would take the pool above its budget (``RESOURCE_POOL_MAX_MEMORY_MB``, else the
  host memory free when the pool was made), the least recently used entries are evicted.
* **Idle timeout** (``RESOURCE_POOL_TIMEOUT_MINS``, or ``idle_timeout_s``): entries unused
  for longer are dropped on the next call, or by :meth:`ResourcePool.cleanup_unused_resources`.

``stats()`` reports the counts, memory per device, entries, evictions, fallbacks and
``errors`` (each with ``severity``, ``error_type``, ``message``, ``hardware``,
``details``), which :class:`hwaccel.HardwareCompatibilityReporter` collects.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from hwaccel.errors import UsageError
from hwaccel.hardware.devices import HardwareDetector, NoDeviceError, select_device, torch_priority
from hwaccel.kit.env_numbers import env_number

MIB = 2**20
LOW_MEMORY_ENV = "RESOURCE_POOL_LOW_MEMORY"
BUDGET_ENV = "RESOURCE_POOL_MAX_MEMORY_MB"
TIMEOUT_ENV = "RESOURCE_POOL_TIMEOUT_MINS"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Entry:
    """One pooled resource."""

    kind: str
    name: str
    family: str | None
    device: str
    value: Any
    memory_mb: float
    created: float
    last_used: float
    uses: int = 1
    fallback: str | None = None

    def describe(self, now: float) -> dict[str, Any]:
        """A JSON-safe dict of the entry (without the object itself)."""
        return {"kind": self.kind, "name": self.name, "family": self.family,
                "device": self.device, "memory_mb": round(self.memory_mb, 3),
                "uses": self.uses, "idle_s": round(now - self.last_used, 3),
                "fallback": self.fallback}


@dataclass
class _Counts:
    hits: int = 0
    misses: int = 0
    constructions: int = 0
    evictions: list[dict[str, Any]] = field(default_factory=list)
    expired: int = 0
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def module_bytes(value: Any) -> int | None:
    """Bytes of a module's unique parameters and buffers (``None`` for other objects)."""
    parameters = getattr(value, "parameters", None)
    buffers = getattr(value, "buffers", None)
    if not callable(parameters) or not callable(buffers):
        return None
    seen = {id(t): t for t in (*parameters(), *buffers())}
    return sum(t.numel() * t.element_size() for t in seen.values())


def release_cached_memory(device: str) -> bool:
    """Give the cached memory blocks of ``device``'s type back to its driver, when torch
    keeps a cache for that type (its ``torch.<type>`` module has ``empty_cache``, as CUDA,
    ROCm and MPS do); return whether it did. A device string torch does not parse (a
    converted-graph runtime's) has no torch cache, nor has a process that never imported
    torch: nothing is done then."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        return False
    release = getattr(getattr(torch, kind, None), "empty_cache", None)
    if not callable(release):
        return False
    release()
    return True


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MIB


class ResourcePool:
    """A thread-safe pool of models and other resources (see the module docstring).

    :param detector: where devices come from (default: hwaccel's cached detection).
    :param low_memory: evict least recently used entries to stay under the budget
        (default: ``RESOURCE_POOL_LOW_MEMORY``).
    :param memory_budget_mb: the budget in low-memory mode (default:
        ``RESOURCE_POOL_MAX_MEMORY_MB``, else the free host memory at creation).
    :param idle_timeout_s: drop entries unused this long (default:
        ``RESOURCE_POOL_TIMEOUT_MINS``; none when unset).
    :param clock: the time source (tests pass their own).
    """

    def __init__(self, *, detector: HardwareDetector | None = None,
                 low_memory: bool | None = None, memory_budget_mb: float | None = None,
                 idle_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.detector = detector or HardwareDetector()
        self.low_memory = _env_flag(LOW_MEMORY_ENV) if low_memory is None else low_memory
        minutes = env_number(TIMEOUT_ENV)
        self.idle_timeout_s = idle_timeout_s if idle_timeout_s is not None else (
            minutes * 60 if minutes else None)
        self._budget = memory_budget_mb
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], Entry] = {}
        self._aliases: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        self._building: dict[tuple[str, str, str], Future] = {}
        self._counts = _Counts()

    # ---- the budget ------------------------------------------------------------------

    @property
    def memory_budget_mb(self) -> float | None:
        """The low-memory budget (``None`` outside low-memory mode)."""
        if not self.low_memory:
            return None
        if self._budget is None:
            from hwaccel.estimates.resources import host_memory

            self._budget = env_number(BUDGET_ENV) or host_memory(self.detector.detect())[0]
        return self._budget

    def memory_in_use_mb(self, device: str | None = None) -> float:
        """Memory of the pool's entries, on one device or all."""
        with self._lock:
            return sum(e.memory_mb for e in self._entries.values()
                       if device is None or e.device == device)

    # ---- getting resources -----------------------------------------------------------

    def get_model(self, family: str | None, model_name: str,
                  constructor: Callable[[], Any] | None = None,
                  hardware_preferences: dict[str, Any] | None = None) -> Any:
        """The pool's instance of ``model_name`` on the preferred device.

        :param family: the model's family (``embedding``, ...), recorded with the entry.
        :param constructor: builds the model (on the CPU) the first time it is asked for.
        :param hardware_preferences: ``{"device": ...}`` or ``{"priority_list": [...],
            "preferred_index": N}`` (see the module docstring).
        :raises UsageError: no constructor for a model not in the pool, or bad preferences.
        """
        choice = self._choose(hardware_preferences)
        return self._get("model", model_name, family, choice, constructor)

    def get_resource(self, resource_type: str, resource_id: str | None = None,
                     constructor: Callable[[], Any] | None = None) -> Any:
        """Any other shared object (a tokenizer, a processor), kept on the CPU."""
        return self._get(resource_type, resource_id or resource_type, None, None, constructor)

    def get_tokenizer(self, model_type: str | None, model_name: str,
                      constructor: Callable[[], Any] | None = None) -> Any:
        """The pool's tokenizer of ``model_name``."""
        return self._get("tokenizer", model_name, model_type, None, constructor)

    def _choose(self, preferences: dict[str, Any] | None) -> Any:
        preferences = dict(preferences or {})
        unknown = set(preferences) - {"device", "priority_list", "preferred_index"}
        if unknown:
            raise UsageError(f"unknown hardware preference {', '.join(sorted(unknown))} "
                             "(known: device, priority_list, preferred_index)")
        device = preferences.get("device")
        index = preferences.get("preferred_index")
        if isinstance(device, str) and ":" in device:
            name, _, number = device.partition(":")
            if number.isdigit():
                device, index = name, int(number)
        report = self.detector.detect()
        priority = [device] if device else preferences.get("priority_list") or \
            torch_priority(report)
        return select_device(report, priority, index or 0), index

    def host_device(self) -> str:
        """The torch device string of the host, where resources stay unless placed: the
        device of a last-resort backend (the CPU) that runs PyTorch modules.

        :raises NoDeviceError: no such backend is declared and detected.
        """
        report = self.detector.detect()
        facts = report.backend_facts()
        for backend in facts.last_resort_names():
            records = report.available(backend) if facts.runs_torch(backend) else []
            if records:
                return records[0].address
        raise NoDeviceError("no host device for the resource pool: no backend that runs "
                            "PyTorch modules is declared the last resort and detected "
                            "(`hwaccel detect` shows the backends)")

    def _get(self, kind: str, name: str, family: str | None, choice: Any,
             constructor: Callable[[], Any] | None) -> Any:
        device = choice[0].device if choice else self.host_device()
        key = (kind, name, device)
        with self._lock:
            self._expire()
            entry = self._entries.get(self._aliases.get(key, key))
            if entry is not None:
                self._counts.hits += 1
                entry.uses += 1
                entry.last_used = self._clock()
                return entry.value
            future = self._building.get(key)
            owner = future is None
            if owner:
                if constructor is None:
                    raise UsageError(f"{kind} {name!r} is not in the pool and no constructor "
                                     "was given")
                future = self._building[key] = Future()
                self._counts.misses += 1
            else:
                self._counts.hits += 1
        if not owner:
            return future.result()
        try:
            entry = self._build(kind, name, family, choice, constructor)
        except BaseException as exc:
            with self._lock:
                del self._building[key]
                self._counts.errors.append({
                    "severity": "error", "error_type": "resource_pool_construction",
                    "message": f"constructing {kind} {name!r} failed: "
                               f"{type(exc).__name__}: {exc}",
                    "hardware": choice[0].backend if choice else None,
                    "details": {"name": name, "device": device}})
            future.set_exception(exc)
            raise
        with self._lock:
            self._admit(entry)
            actual = (kind, name, entry.device)
            if actual != key:
                self._aliases[key] = actual
            del self._building[key]
        future.set_result(entry.value)
        return entry.value

    # ---- building and placing --------------------------------------------------------

    def _build(self, kind: str, name: str, family: str | None, choice: Any,
               constructor: Callable[[], Any]) -> Entry:
        before = _rss_mb()
        value = constructor()
        self._counts.constructions += 1
        size = module_bytes(value)
        memory = size / MIB if size is not None else max(0.0, _rss_mb() - before)
        device, fallback = self.host_device(), None
        if choice is not None:
            device, fallback = self._target(choice, memory)
            if device != self.host_device() and callable(getattr(value, "to", None)):
                value = value.to(device)
        now = self._clock()
        entry = Entry(kind=kind, name=name, family=family, device=device, value=value,
                      memory_mb=memory, created=now, last_used=now, fallback=fallback)
        if fallback:
            self._counts.fallbacks.append({"name": name, "device": device,
                                           "reason": fallback})
        return entry

    def _target(self, choice: Any, memory_mb: float) -> tuple[str, str | None]:
        """The device for a model of ``memory_mb``, and the reason of any fallback."""
        selected, wanted_index = choice
        backend = selected.backend
        host = self.host_device()
        if not selected.is_torch:
            return host, (f"{selected.device} runs converted graphs, not PyTorch modules: "
                          "kept on the CPU")
        if selected.device == host:
            return host, None
        devices = self.detector.detect().available(backend)
        free = {h.index: self._free_mb(h) for h in devices}
        fitting = [h for h in devices if free[h.index] is None or free[h.index] >= memory_mb]
        preferred = next((h for h in fitting if h.index == (wanted_index
                                                             if wanted_index is not None
                                                             else -1)), None)
        if preferred is None and fitting:
            preferred = max(fitting, key=lambda h: (free[h.index] or 0.0, -h.index))
        if preferred is None:
            room = ", ".join(f"{h.address} {free[h.index]:,.0f} MiB free"
                             for h in devices)
            return host, (f"{memory_mb:,.0f} MiB does not fit any {backend} device "
                           f"({room}): kept on the CPU")
        note = None
        if wanted_index is not None and preferred.index != wanted_index:
            note = (f"{backend}:{wanted_index} cannot hold {memory_mb:,.0f} MiB; placed on "
                    f"{preferred.address}")
        return preferred.address, note

    def _free_mb(self, hardware: Any) -> float | None:
        """A device's detected free memory less what the pool placed on it."""
        if hardware.memory_available_bytes is None:
            return None
        with self._lock:
            used = sum(e.memory_mb for e in self._entries.values()
                       if e.device == hardware.address)
        return hardware.memory_available_bytes / MIB - used

    # ---- eviction and expiry (called with the lock held) ------------------------------

    def _admit(self, entry: Entry) -> None:
        budget = self.memory_budget_mb
        if budget is not None:
            used = sum(e.memory_mb for e in self._entries.values())
            for old in sorted(self._entries.values(), key=lambda e: e.last_used):
                if used + entry.memory_mb <= budget:
                    break
                self._drop(old)
                used -= old.memory_mb
                self._counts.evictions.append({"name": old.name, "device": old.device,
                                               "memory_mb": old.memory_mb,
                                               "reason": f"low-memory budget {budget:,.0f} "
                                                         "MiB"})
            if entry.memory_mb > budget:
                self._counts.errors.append({
                    "severity": "warning", "error_type": "resource_pool_budget",
                    "message": f"{entry.kind} {entry.name!r} needs {entry.memory_mb:,.0f} MiB, "
                               f"over the low-memory budget of {budget:,.0f} MiB on its own",
                    "hardware": None, "details": {"name": entry.name,
                                                  "device": entry.device}})
        self._entries[(entry.kind, entry.name, entry.device)] = entry

    def _drop(self, entry: Entry) -> None:
        key = (entry.kind, entry.name, entry.device)
        self._entries.pop(key, None)
        for alias in [a for a, k in self._aliases.items() if k == key]:
            del self._aliases[alias]
        release_cached_memory(entry.device)

    def _expire(self) -> int:
        if self.idle_timeout_s is None:
            return 0
        now = self._clock()
        old = [e for e in self._entries.values() if now - e.last_used > self.idle_timeout_s]
        for entry in old:
            self._drop(entry)
        self._counts.expired += len(old)
        return len(old)

    # ---- maintenance -----------------------------------------------------------------

    def cleanup_unused_resources(self, max_age_minutes: float | None = None) -> int:
        """Drop entries unused for ``max_age_minutes`` (default: the idle timeout); return
        how many were dropped."""
        with self._lock:
            if max_age_minutes is None:
                return self._expire()
            now = self._clock()
            old = [e for e in self._entries.values()
                   if now - e.last_used > max_age_minutes * 60]
            for entry in old:
                self._drop(entry)
            self._counts.expired += len(old)
            return len(old)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            for entry in list(self._entries.values()):
                self._drop(entry)

    def stats(self) -> dict[str, Any]:
        """Counts, memory per device, entries, evictions, fallbacks and errors."""
        with self._lock:
            now = self._clock()
            per_device: dict[str, float] = {}
            for entry in self._entries.values():
                per_device[entry.device] = per_device.get(entry.device, 0.0) + entry.memory_mb
            counts = self._counts
            return {
                "resources": len(self._entries),
                "models": sum(1 for e in self._entries.values() if e.kind == "model"),
                "hits": counts.hits, "misses": counts.misses,
                "constructions": counts.constructions, "expired": counts.expired,
                "memory_mb": {d: round(v, 3) for d, v in per_device.items()},
                "total_memory_mb": round(sum(per_device.values()), 3),
                "low_memory_mode": self.low_memory,
                "memory_budget_mb": self._budget if self.low_memory else None,
                "idle_timeout_s": self.idle_timeout_s,
                "entries": [e.describe(now) for e in self._entries.values()],
                "evictions": list(counts.evictions), "fallbacks": list(counts.fallbacks),
                "errors": list(counts.errors),
            }

    get_stats = stats


_GLOBAL: ResourcePool | None = None
_GLOBAL_LOCK = threading.Lock()


def get_global_resource_pool() -> ResourcePool:
    """The process-wide pool (made on first use, with the environment's settings)."""
    global _GLOBAL
    with _GLOBAL_LOCK:
        if _GLOBAL is None:
            _GLOBAL = ResourcePool()
        return _GLOBAL


def pool_config(placements: list[tuple[str, dict[str, Any]]], estimator: Any) -> dict[str, Any]:
    """The pool configuration for holding the classified models together in one process.

    Held together, the models share one runtime: the memory is the largest runtime baseline
    of their devices, plus each model's resident weights (the fp32 CPU copy and the extra
    copies its backend keeps), plus the largest single call's activations. Low-memory mode is
    advised when that exceeds the free memory of the host (or of a device for the models
    placed on it).

    A model whose peak is not known (no pipeline runs it, its config is not here, or its
    device's runtime baseline is not measured) is never counted as 0: it is listed in
    ``resource_requirements["unknown_models"]`` with the reason, the totals it would enter
    (``max_memory_mb``, ``total_memory_mb``, its device's ``per_device_mb``) are ``None``,
    ``known_*`` fields hold the sums over the models that are known (a lower bound), and
    ``low_memory_mode`` is ``None`` (undecided) unless the known part alone exceeds the free
    memory.

    :param placements: (model, result of ``classify_model``) pairs.
    """
    from hwaccel.estimates.resources import host_memory

    per_model = {}
    unknown: dict[str, str] = {}
    resident: dict[str, float] = {}
    runtimes: dict[str, float] = {}
    activations: dict[str, float] = {}
    for model, result in placements:
        estimate = result.get("resource_estimate") or {}
        device = estimate.get("device") or None
        known = estimate.get("peak_mb") is not None
        weights = (estimate.get("host_weights_mb") or 0.0) + \
            (estimate.get("extra_copies") or 0.0) * (estimate.get("weights_mb") or 0.0)
        if known:
            resident[device] = resident.get(device, 0.0) + weights
            runtimes[device] = max(runtimes.get(device, 0.0), estimate.get("runtime_mb") or 0.0)
            activations[device] = max(activations.get(device, 0.0),
                                      (estimate.get("activations_mb") or 0.0)
                                      + (estimate.get("kv_cache_mb") or 0.0))
        else:
            unknown[model] = _unknown_reason(result)
        per_model[model] = {"family": result["family"], "device": device,
                            "recommended_hardware": result["recommended_hardware"],
                            "torch_device": result["torch_device"],
                            "peak_mb": estimate.get("peak_mb"),
                            "resident_mb": round(weights, 1) if known else None,
                            "requirements_known": known,
                            "source": estimate.get("source")}
    totals = {d: runtimes[d] + resident[d] + activations[d] for d in resident}
    available, _ = host_memory(estimator.report)
    known_total = max(runtimes.values(), default=0.0) + sum(resident.values()) + \
        max(activations.values(), default=0.0)
    known_max = max((e["peak_mb"] for e in per_model.values() if e["requirements_known"]),
                    default=None)
    counts: dict[str, int] = {}
    for entry in per_model.values():
        if entry["recommended_hardware"]:
            counts[entry["recommended_hardware"]] = counts.get(entry["recommended_hardware"],
                                                               0) + 1
    preferred = max(counts, key=lambda b: (counts[b], b)) if counts else None
    torch_device = next((e["torch_device"] for e in per_model.values()
                         if e["recommended_hardware"] == preferred), None)
    exceeds = available is not None and known_total > available
    low_memory = exceeds if not unknown or exceeds else None
    free = f"{available:,.0f} MiB free" if available is not None else "free memory unknown"
    if not unknown:
        reason = f"the models together need {known_total:,.0f} MiB, {free}"
    else:
        missing = "; ".join(f"{m}: {why}" for m, why in unknown.items())
        reason = (f"the memory of {len(unknown)} of {len(per_model)} models is unknown "
                  f"({missing}), so the total is unknown"
                  + (f"; the others alone need at least {known_total:,.0f} MiB, {free}"
                     if totals else f"; {free}"))
    unknown_devices = {per_model[m]["device"] for m in unknown}
    return {
        "models": per_model,
        "resource_requirements": {
            "max_memory_mb": None if unknown else _round_or_none(known_max, 0.0),
            "total_memory_mb": None if unknown else round(known_total, 1),
            "per_device_mb": {**{d: round(v, 1) for d, v in totals.items()},
                              **{d: None for d in unknown_devices if d is not None}},
            "known_max_memory_mb": _round_or_none(known_max, None),
            "known_total_memory_mb": round(known_total, 1) if totals else None,
            "unknown_models": unknown,
            "available_memory_mb": round(available, 1) if available is not None else None},
        "hardware_recommendations": {"preferred_hardware": preferred,
                                     "torch_device": torch_device,
                                     "per_model": {m: e["torch_device"]
                                                   for m, e in per_model.items()}},
        "resource_pool_config": {
            "low_memory_mode": low_memory,
            "memory_budget_mb": round(available, 1) if low_memory and available else None,
            "recommended_timeout_mins": env_number(TIMEOUT_ENV),
            "reason": reason},
    }


def _round_or_none(value: float | None, empty: float | None) -> float | None:
    return empty if value is None else round(value, 1)


def _unknown_reason(result: dict[str, Any]) -> str:
    """Why a classified model's memory is not known, in the estimator's own words."""
    estimate = result.get("resource_estimate")
    if estimate is None:
        basis = (result.get("resource_requirements") or {}).get("basis") or []
        return "; ".join(basis) or result.get("reason") or "not estimated"
    return estimate.get("reason") or "no peak was estimated"
