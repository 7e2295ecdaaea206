"""Plugin loading, and hook calls through pluggy with each plugin's failures its own.

Plugins are found through the entry-point group ``hwaccel``; the entry-point name is the
plugin id (``cpu``, ``text``). Loading happens only in :func:`load_plugins`, never at import.
Each plugin is loaded on its own: one that is blocked, lacks an optional library, fails to
import, or breaks the hook contract gets a status and an error message, and the others load.

Hooks are called through the plugin manager (``pm.hook.<name>``), so pluggy's tracing,
``firstresult`` and argument checks apply. Every implementation is registered inside a guard
(:class:`_Guard`): an exception, or a value of the wrong type, becomes a :class:`HookError`
against that plugin, the implementation counts as having answered ``None``, and the other
plugins still answer. Under ``HWACCEL_STRICT_PLUGINS=1`` a hook error raises
:class:`~hwaccel.errors.PluginHookError` instead.

Environment controls:

* ``HWACCEL_LOAD_PLUGINS``: comma-separated allow-list of plugin ids or distribution names;
  set but empty means "load none" (the escape hatch when a plugin breaks start-up).
* ``HWACCEL_DISABLE_PLUGINS``: comma-separated block-list, same names.
* ``HWACCEL_STRICT_PLUGINS=1``: any plugin failure raises: :class:`PluginLoadError` when
  loading, :class:`PluginHookError` in a hook.
* ``HWACCEL_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib.metadata
import inspect
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from hwaccel import hookspecs
from hwaccel.errors import PluginHookError, PluginLoadError
from hwaccel.types import (
    BackendInfo,
    BenchmarkResult,
    Classification,
    HardwareInfo,
    PipelineInfo,
    TemplatePart,
)

ENTRY_POINT_GROUP = "hwaccel"
_RETURN_TYPES: dict[str, type] = {
    "hwaccel_backend_info": BackendInfo,
    "hwaccel_detect": HardwareInfo,  # a list of these
    "hwaccel_pipeline_info": PipelineInfo,
    "hwaccel_classify": Classification,
    "hwaccel_template": TemplatePart,
    "hwaccel_benchmark": BenchmarkResult,
}
HOOK_NAMES = tuple(_RETURN_TYPES)


@dataclass
class PluginRecord:
    """What ``hwaccel list-plugins`` shows for one entry point, loaded or not."""

    name: str
    distribution: str | None
    version: str | None
    status: str  # loaded | unavailable | failed | disabled
    kind: str = "unknown"  # backend | pipeline | other | unknown (not imported)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    module: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-safe dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class HookError:
    """An exception (or a wrong return value) from one plugin's hook implementation.

    ``category`` says whose failure it is (:mod:`hwaccel.kit.failures`): the one the exception
    carries, else hwaccel's own when hwaccel code raised it, else the backend's.
    """

    plugin: str
    hook: str
    message: str
    category: str | None = None

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} failed in {self.hook}: {self.message}"


def make_plugin_manager() -> pluggy.PluginManager:
    """Return a fresh plugin manager with the hwaccel hookspecs and no plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _strict_default() -> bool:
    return os.environ.get("HWACCEL_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


def _kind_of(hooks: Iterable[str]) -> str:
    hooks = set(hooks)
    if hooks & {"hwaccel_backend_info", "hwaccel_detect", "hwaccel_benchmark"}:
        return "backend"
    if hooks & {"hwaccel_pipeline_info", "hwaccel_classify"}:
        return "pipeline"
    return "other"


def _contract_problem(module: object) -> str | None:
    """Return why a plugin module breaks the hook contract, or ``None`` when it is fine."""
    for attr in dir(module):
        if attr.startswith("hwaccel_") and attr not in HOOK_NAMES:
            if callable(getattr(module, attr)):
                return f"unknown hook {attr!r} (known hooks: {', '.join(HOOK_NAMES)})"
    for hook in HOOK_NAMES:
        function = getattr(module, hook, None)
        if function is None or not callable(function):
            continue
        for param in inspect.signature(function).parameters.values():
            if param.default is not inspect.Parameter.empty:
                return f"{hook} gives argument {param.name!r} a default; hook arguments take none"
    return None


def _describe(exc: BaseException) -> str:
    """One line: the exception type and its message, multi-line messages joined."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text[:400]}".rstrip(": ")


def _where(exc: BaseException) -> str:
    """Where an exception was raised: the innermost frame's file name and line."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "at ?"


def _hook_error(plugin: str, hook: str, exc: BaseException) -> HookError:
    """The record of an exception a hook implementation raised, with its category."""
    from hwaccel.kit.failures import AttributedError, category_of

    message = exc.message if isinstance(exc, AttributedError) else \
        f"{_describe(exc)} ({_where(exc)})"
    return HookError(plugin, hook, message, category_of(exc))


def load_plugins(
    pm: pluggy.PluginManager,
    *,
    strict: bool | None = None,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> list[PluginRecord]:
    """Load every ``hwaccel`` entry point into ``pm`` and return one record per entry point.

    :param pm: a manager from :func:`make_plugin_manager`.
    :param strict: raise :class:`PluginLoadError` on the first failure instead of recording
        it; defaults to ``HWACCEL_STRICT_PLUGINS``.
    :param entry_points: the entry points to load (tests pass their own); defaults to the
        installed ones of group ``hwaccel``.
    """
    strict = _strict_default() if strict is None else strict
    allow = _env_names("HWACCEL_LOAD_PLUGINS")
    block = _env_names("HWACCEL_DISABLE_PLUGINS") or set()
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    records: list[PluginRecord] = []
    owners: dict[str, str | None] = {}
    for ep in sorted(entry_points, key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        if ep.name in owners:
            if owners[ep.name] == dist_name:
                continue  # the same distribution seen twice (lib64 -> lib symlinks)
            record = PluginRecord(ep.name, dist_name, version, "failed",
                                  error=f"name conflict: {ep.name!r} is already provided by "
                                        f"{owners[ep.name]}")
            records.append(record)
            _maybe_raise(strict, record)
            continue
        owners[ep.name] = dist_name
        names = {ep.name, dist_name}
        if (allow is not None and not names & allow) or names & block:
            records.append(PluginRecord(ep.name, dist_name, version, "disabled"))
            continue
        record = _load_one(pm, ep, dist_name, version)
        records.append(record)
        _maybe_raise(strict, record)
    if os.environ.get("HWACCEL_TRACE_PLUGINS", "").strip() in {"1", "true", "yes"}:
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return records


def _maybe_raise(strict: bool, record: PluginRecord) -> None:
    if strict and record.status == "failed":
        raise PluginLoadError(f"plugin {record.name!r} ({record.distribution}): {record.error}")


def _load_one(pm: pluggy.PluginManager, ep: Any, dist_name: str | None,
              version: str | None) -> PluginRecord:
    record = PluginRecord(ep.name, dist_name, version, "failed", module=ep.value)
    try:
        module = ep.load()
    except ModuleNotFoundError as exc:
        own_module = ep.value.split(":")[0].split(".")[0]
        record.error = _describe(exc)
        if exc.name and exc.name.split(".")[0] != own_module:
            record.status = "unavailable"  # an optional library the plugin needs is missing
        return record
    except Exception as exc:  # noqa: BLE001 - any import error is this plugin's failure
        record.error = _describe(exc)
        return record
    problem = _contract_problem(module)
    if problem:
        record.error = problem
        return record
    try:
        pm.register(module, name=ep.name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        if pm.is_registered(module):
            pm.unregister(module)
        record.error = _describe(exc)
        return record
    guard_implementations(pm, module)
    record.hooks = sorted(caller.name for caller in pm.get_hookcallers(module) or [])
    record.kind = _kind_of(record.hooks)
    record.status = "loaded"
    return record


_ERRORS: contextvars.ContextVar[list[HookError] | None] = contextvars.ContextVar(
    "hwaccel_hook_errors", default=None)


@dataclass(frozen=True)
class _Answer:
    """One implementation's non-``None`` answer, with the plugin that gave it."""

    plugin: str
    value: Any

    def __repr__(self) -> str:  # what HWACCEL_TRACE_PLUGINS prints as a result
        return f"{self.plugin}: {self.value!r}"


class _Guard:
    """A hook implementation run so that its failure is its plugin's, never the caller's."""

    def __init__(self, function: Any, plugin: str, hook: str):
        functools.update_wrapper(self, function)
        self.function, self.plugin, self.hook = function, plugin, hook

    def __call__(self, *args: Any) -> _Answer | None:
        try:
            value = _checked(self.hook, self.function(*args))
        except Exception as exc:  # noqa: BLE001 - attributed to the plugin, never fatal
            error = _hook_error(self.plugin, self.hook, exc)
            collector = _ERRORS.get()
            if collector is None:  # called outside Plugins.call_each: nothing would see it
                raise PluginHookError(str(error)) from exc
            collector.append(error)
            return None
        return None if value is None else _Answer(self.plugin, value)


def guard_implementations(pm: pluggy.PluginManager, plugin: object) -> None:
    """Run every hook implementation of a registered ``plugin`` inside a :class:`_Guard`."""
    name = pm.get_name(plugin)
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not isinstance(impl.function, _Guard):
                impl.function = _Guard(impl.function, name or "?", caller.name)


def _checked(hook: str, value: Any) -> Any:
    """``value`` when it has the type ``hook`` must return, else :class:`TypeError`."""
    expected = _RETURN_TYPES[hook]
    if value is None:
        return None
    if hook == "hwaccel_detect":
        if not isinstance(value, list) or not all(isinstance(v, expected) for v in value):
            raise TypeError(f"must return a list of {expected.__name__}")
        return value
    if not isinstance(value, expected):
        raise TypeError(f"must return {expected.__name__} or None, got {type(value).__name__}")
    return value


class Plugins:
    """A loaded plugin manager plus its records: the object the rest of hwaccel uses."""

    def __init__(self, pm: pluggy.PluginManager, records: list[PluginRecord]):
        self.pm = pm
        self.records = records
        self._by_name = {r.name: r for r in records}

    def loaded(self) -> list[PluginRecord]:
        """Return the records of the plugins that loaded."""
        return [r for r in self.records if r.status == "loaded"]

    def call_each(self, hook: str, **kwargs: Any) -> tuple[list[tuple[str, Any]], list[HookError]]:
        """Call ``hook`` through pluggy and return every plugin's answer and every failure.

        :returns: ``(results, errors)``: each non-``None`` result paired with its plugin
            name, in plugin-name order (records stamped with provenance; for a
            ``firstresult`` hook, at most one), and one :class:`HookError` per implementation
            that raised or returned the wrong type.
        :raises PluginHookError: a hook failed and ``HWACCEL_STRICT_PLUGINS`` is set.
        """
        errors: list[HookError] = []
        token = _ERRORS.set(errors)
        try:
            answer = getattr(self.pm.hook, hook)(**kwargs)
        finally:
            _ERRORS.reset(token)
        if errors and _strict_default():
            raise PluginHookError(str(errors[0]))
        answers = answer if isinstance(answer, list) else [answer]
        results = [(a.plugin, self.stamp_all(hook, a.plugin, a.value))
                   for a in answers if isinstance(a, _Answer)]
        return sorted(results, key=lambda pair: pair[0]), errors

    def call_first(self, hook: str, **kwargs: Any) -> tuple[Any, list[HookError]]:
        """Return the first non-``None`` result of ``hook`` (in plugin-name order) and errors."""
        results, errors = self.call_each(hook, **kwargs)
        return (results[0][1] if results else None), errors

    def stamp_all(self, hook: str, plugin: str, value: Any) -> Any:
        """Stamp provenance on a hook's answer: each record of a list, or the one record."""
        if isinstance(value, list):
            return [self.stamp(v, plugin) for v in value]
        return self.stamp(value, plugin)

    def stamp(self, value: Any, plugin: str) -> Any:
        """Set ``plugin``/``distribution``/``distribution_version`` on a record from the core."""
        record = self._by_name.get(plugin)
        return dataclasses.replace(
            value, plugin=plugin,
            distribution=record.distribution if record else None,
            distribution_version=record.version if record else None)


def load(*, strict: bool | None = None) -> Plugins:
    """Build a fresh manager, load the installed plugins and return them."""
    pm = make_plugin_manager()
    return Plugins(pm, load_plugins(pm, strict=strict))


@functools.cache
def get_plugins() -> Plugins:
    """Return the process-wide loaded plugins (loaded on first use)."""
    return load()
