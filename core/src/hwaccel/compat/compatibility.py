"""The hardware compatibility report: what keeps models from running here, and what to do.

:class:`HardwareCompatibilityReporter` keeps the predecessor's API (``check_components``,
``collect_*_errors``, ``test_full_hardware_stack``, ``generate_report``,
``generate_compatibility_matrix``, ``save_to_file``). Every finding comes from something
real: the plugin loader's records, the backends' detection, the model resolver and
classifier, the composition of the generated tests' templates, the DuckDB history, or a
benchmark job run on this machine. Each finding has a severity (``critical``: nothing can
run; ``error``: a backend, plugin or model fails; ``warning``: it runs degraded; ``info``:
for the record) and advice looked up by its ``error_type`` in :data:`RECOMMENDATIONS`; the
advice is text, not a measurement.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib.metadata
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError, MissingSlotError, ModelReferenceError, UsageError
from hwaccel.generating.generate import parts_for, render
from hwaccel.hardware.backends import Backends, backends_of, installed
from hwaccel.hardware.detection import DetectionReport, detect
from hwaccel.hardware.simulators import label
from hwaccel.history.report import backend_order, cell_status
from hwaccel.history.store import Store
from hwaccel.models.classify import classify_ref
from hwaccel.models.resolve import resolve_model
from hwaccel.plugins import HookError, PluginRecord, Plugins, load
from hwaccel.running.benchmark import plan
from hwaccel.running.runner import run_job
from hwaccel.types import BenchmarkResult, BenchmarkSettings, Classification, HardwareInfo, ModelRef

SEVERITIES = ("critical", "error", "warning", "info")
LOW_MEMORY_FRACTION = 0.10  # a device with less than this share of its memory free warns
MEMORY_CATEGORIES = frozenset({"oom", "killed", "out-of-memory"})
# Benchmark error categories -> finding types; any other category keeps its name.
_CATEGORY_TYPES: dict[str | None, str] = {
    "harness": "hwaccel_bug", "model": "model_failed", "backend": "backend_failed",
    "oom": "memory_pressure", "killed": "memory_pressure", "out-of-memory": "memory_pressure",
    "conversion": "conversion_failed", "unavailable": "backend_absent",
    "model-unavailable": "model_unavailable", "template": "missing_template",
    "error": "benchmark_failed", None: "test_failed",
}
_PLUGIN_STATUS = {  # a plugin record's status -> (severity, error_type)
    "failed": ("error", "plugin_load"), "unavailable": ("error", "plugin_dependency"),
    "disabled": ("info", "plugin_disabled"),
}
_DISABLE_HINT = "Disable it meanwhile with HWACCEL_DISABLE_PLUGINS=<plugin>; the rest keep working"
RECOMMENDATIONS: dict[str, tuple[str, ...]] = {
    "plugin_load": (
        "Run `hwaccel list-plugins` to see the plugin's load error",
        "Reinstall or upgrade the plugin's distribution so it matches this hwaccel-core",
        _DISABLE_HINT),
    "plugin_dependency": (
        "Install the library the message names: the plugin imports it at load time",),
    "plugin_disabled": (
        "Remove it from HWACCEL_DISABLE_PLUGINS (or add it to HWACCEL_LOAD_PLUGINS) to use it",),
    "no_backend_plugin": (
        "Install the hwaccel meta-package (pip install hwaccel): it brings the CPU backend",
        "Check HWACCEL_LOAD_PLUGINS: set but empty, it loads no plugin at all"),
    "no_pipeline_plugin": (
        "Install the hwaccel meta-package (pip install hwaccel): it brings the nine pipelines",
        "Check HWACCEL_LOAD_PLUGINS: set but empty, it loads no plugin at all"),
    "hook_failed": (
        "Upgrade the plugin or report the error to its authors",
        "Set HWACCEL_TRACE_PLUGINS=1 to see every hook call", _DISABLE_HINT),
    "detection_failed": (
        "Retry with `hwaccel detect --refresh`",
        "Check the device's driver and runtime against what the backend plugin supports",
        _DISABLE_HINT),
    "backend_absent": (
        "Nothing to do if this machine has no such device: the other backends are used",
        "Otherwise install what the reason names (driver, runtime build or SDK), then run "
        "`hwaccel detect --refresh`"),
    "device_unavailable": (
        "The backend's other devices are used; this one is skipped with the reason",
        "To use it, fix what the reason names, then run `hwaccel detect --refresh`"),
    "memory_pressure": (
        "Close other programs that use this device's memory",
        "Use a smaller model, batch size or sequence length (--batch-size, --seq-len)",
        "Use a lower precision (--precision fp16 or bf16) where the backend supports it",
        "Run the model on a device with more free memory"),
    "timeout": (
        "Raise the job time limit (--timeout)",
        "Use a smaller model, batch size or sequence length",
        "Check the machine's load: other processes slow the job down"),
    "crash": (
        "Generate the model's test for this backend (`hwaccel generate MODEL --backend B`) and "
        "run it to see the full traceback",
        "Check that the backend's runtime version is one its plugin supports"),
    "unsupported": (
        "Run the model on another backend: this one cannot run its architecture or operators",),
    "conversion_failed": (
        "The backend could not convert the model: upgrade the backend's runtime, or try "
        "another precision", "Run the model on another backend meanwhile"),
    "missing_template": (
        "Upgrade the backend plugin so that it provides every slot the pipeline requires",
        "Run `hwaccel list-plugins` to check that both plugins loaded"),
    "template_invalid": (
        "Report it to the plugins' authors: their template parts compose into invalid Python",),
    "model_unresolved": (
        "Give org/name, a folder with config.json, tiny:<model_type> or a known alias",
        "Fetch hub models first (`hf download ORG/NAME`): hwaccel never downloads"),
    "model_unavailable": (
        "Fetch the model first (`hf download ORG/NAME`): hwaccel never downloads",
        "Use tiny:<model_type> to test the architecture without its weights"),
    "model_unclassified": (
        "Give evidence: `hwaccel classify MODEL --task TASK` or `--class MODEL_CLASS`",
        "Install the pipeline plugin that the reason names, if it names one"),
    "hwaccel_bug": (
        "This failure is hwaccel's own (it could not build the model or its inputs, or a "
        "check assumed what the backend lacks): report it with the message",
        "Run `hwaccel benchmark MODEL --backend cpu` to see whether it fails there too"),
    "model_failed": (
        "The model raises on the CPU reference in eager PyTorch: check the model's config "
        "and its transformers version, or report it to the model's authors",),
    "backend_failed": (
        "The backend's converter or runtime refused the model, or its outputs diverged "
        "from the CPU reference: upgrade the backend's runtime, or run the model elsewhere",),
    "missing_dependency": (
        "Install the package the message names (pip install ...), then run again",),
    "benchmark_failed": (
        "Rerun `hwaccel benchmark MODEL --backend B` to reproduce the error",),
    "test_failed": (
        "Generate the model's test for this backend and run it under pytest to see why",),
    "no_device": (
        "Install the hwaccel meta-package (pip install hwaccel): its CPU backend always runs",),
    "history_unavailable": (
        "Run `hwaccel benchmark` or `hwaccel matrix` to record results, or pass the right --db",
        "Close the process that holds the database: DuckDB allows one writer at a time"),
}
_REINSTALL_TYPES = frozenset({"plugin_load", "plugin_dependency", "missing_template"})
_TITLES = {"critical": "Critical", "error": "Errors", "warning": "Warnings", "info": "Info"}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@functools.cache
def install_extras() -> frozenset[str]:
    """Return the backend extras of the installed ``hwaccel`` meta-package (none if absent)."""
    try:
        extras = importlib.metadata.metadata("hwaccel").get_all("Provides-Extra") or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    return frozenset(extras) - {"all", "dev"}


def recommendations_for(error_type: str, hardware: str | None = None,
                        backends: Backends | None = None) -> tuple[str, ...]:
    """Return the advice for a finding: the entry of ``error_type``, then the advice the
    backend ``hardware`` declares (:mod:`hwaccel.hardware.backends`; by default the
    process-wide plugins' declarations) when it is absent or one of its devices is."""
    advice = list(RECOMMENDATIONS.get(error_type, ()))
    if error_type in ("backend_absent", "device_unavailable") and hardware:
        declared = (backends or installed()).advice(hardware)
        if declared:
            advice.append(declared)
    if error_type in _REINSTALL_TYPES and hardware in install_extras():
        advice.append(f"Reinstall the backend with its extra: pip install 'hwaccel[{hardware}]'")
    return tuple(advice)


def error_type_of(category: str | None) -> str:
    """Return the finding type of a benchmark error category (``oom`` -> memory_pressure)."""
    if category in _CATEGORY_TYPES:
        return _CATEGORY_TYPES[category]
    return str(category).replace("-", "_")


@dataclass(frozen=True)
class CompatibilityError:
    """One finding: what failed where, how badly, and what to do about it."""

    severity: str
    component: str
    hardware: str | None
    error_type: str
    message: str
    recommendations: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as a JSON-safe dict."""
        return {**dataclasses.asdict(self), "recommendations": list(self.recommendations)}


class HardwareCompatibilityReporter:
    """Collects compatibility findings and renders them as Markdown or JSON.

    :param plugins: the loaded plugins; loaded on first use when ``None``.
    :param db_path: the DuckDB history to read (read-only); without one, findings and the
        matrix come from this machine's plugins and detection alone.
    :param timeout_s: the time limit of each benchmark job of :meth:`test_full_hardware_stack`.
    :param refresh: detect the hardware afresh instead of using the detection cache.
    """

    def __init__(self, plugins: Plugins | None = None, db_path: Path | str | None = None,
                 timeout_s: float = 120.0, *, refresh: bool = False):
        self._plugins = plugins
        self.db_path = Path(db_path).expanduser() if db_path is not None else None
        self.timeout_s = timeout_s
        self.refresh = refresh
        self.errors: list[CompatibilityError] = []
        self._detection: DetectionReport | None = None
        self._history: list[dict[str, Any]] | None = None
        self._history_problem: str | None = None

    @property
    def plugins(self) -> Plugins:
        """The plugins the findings are about (loaded on first use)."""
        if self._plugins is None:
            self._plugins = load()
        return self._plugins

    def detection(self) -> DetectionReport:
        """Return this machine's hardware as the backend plugins detect it (once per reporter)."""
        if self._detection is None:
            self._detection = detect(self.plugins, refresh=self.refresh)
        return self._detection

    def add_error(self, severity: str, component: str, error_type: str, message: str, *,
                  hardware: str | None = None, recommendations: tuple[str, ...] | None = None,
                  details: dict[str, Any] | None = None) -> CompatibilityError:
        """Record a finding and return it.

        :param recommendations: the advice; by default that of ``error_type`` and ``hardware``
            (:func:`recommendations_for`).
        :param details: JSON-safe facts; other values are stored as their ``str``.
        """
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})")
        if recommendations is None:
            recommendations = recommendations_for(error_type, hardware,
                                                  backends_of(self.plugins))
        error = CompatibilityError(
            severity=severity, component=component, hardware=hardware, error_type=error_type,
            message=message, recommendations=tuple(recommendations),
            details=json.loads(json.dumps(details or {}, default=str)), timestamp=_now())
        self.errors.append(error)
        return error

    def check_components(self) -> list[CompatibilityError]:
        """Record plugins that failed to load or are disabled, a missing kind of plugin
        (critical), and errors of the template hooks; return the findings added."""
        start = len(self.errors)
        for record in self.plugins.records:
            self._plugin_finding(record)
        for kind in ("backend", "pipeline"):
            if not self._loaded_names(kind):
                self.add_error("critical", "plugins", f"no_{kind}_plugin",
                               f"no {kind} plugin loaded: "
                               + ("no hardware can be detected or benchmarked" if kind == "backend"
                                  else "no model can be classified or tested"))
        for error in self._template_hook_errors():
            self._hook_finding("plugins", error)
        return self.errors[start:]

    def collect_hardware_detection_errors(self) -> list[CompatibilityError]:
        """Record detection hook errors, each absent backend (or unavailable device of a
        backend that has others) with its reason, and devices
        with less than :data:`LOW_MEMORY_FRACTION` of their memory free."""
        start = len(self.errors)
        report = self.detection()
        for error in report.errors:
            self.add_error("error", "detection", "detection_failed", str(error),
                           hardware=error.plugin, details={"plugin": error.plugin,
                                                           "hook": error.hook})
        present = {info.backend for info in report.hardware if info.available}
        for info in report.hardware:
            if not info.available:
                # a backend with other devices available is not absent: this device is
                kind, name = ("device_unavailable", f"{info.backend}:{info.device}") \
                    if info.backend in present else ("backend_absent", info.backend)
                self.add_error("info", "detection", kind,
                               f"{name} is absent: {info.reason or 'no reason given'}",
                               hardware=info.backend, details={"device": info.device,
                                                               "reason": info.reason,
                                                               "plugin": info.plugin})
            else:
                self._memory_finding(info, report.timestamp)
        return self.errors[start:]

    def collect_resource_pool_errors(self) -> list[CompatibilityError]:
        """Record out-of-memory failures of the history (latest per model and device) and
        the findings of this process's resource pool.

        The pool is asked for ``get_global_resource_pool().stats()``; each mapping in its
        ``errors`` list (``message``, optional ``severity``, ``error_type``, ``hardware``,
        ``details``) becomes a finding: constructions that failed, models over the
        low-memory budget on their own.
        """
        start = len(self.errors)
        for row in self._latest_rows():
            if not row.get("success") and row.get("error_category") in MEMORY_CATEGORIES:
                self._history_finding("resource_pool", row)
        self._resource_pool_findings()
        return self.errors[start:]

    def collect_model_integration_errors(self, model: str) -> list[CompatibilityError]:
        """Record what keeps ``model`` from running: a reference that does not resolve, a
        classification without a pipeline, weights not on this machine, a generated test that
        cannot be composed for an available backend, and its failures in the history."""
        start = len(self.errors)
        try:
            ref = resolve_model(model)
        except ModelReferenceError as exc:
            self.add_error("error", "model_integration", "model_unresolved", str(exc),
                           details={"model": model})
            return self.errors[start:]
        outcome = classify_ref(ref, self.plugins)
        for error in outcome.errors:
            self._hook_finding("model_integration", error)
        self._model_findings(ref, outcome.classification)
        for row in self._latest_rows():
            if row.get("model_id") == ref.spec:
                self._history_finding("model_integration", row)
        return self.errors[start:]

    def test_full_hardware_stack(self, model: str = "tiny:bert") -> list[CompatibilityError]:
        """Benchmark ``model`` once on every available device, each in a job process of its
        own (1 warm-up, 3 timed calls); record each success (info) and failure (error)."""
        start = len(self.errors)
        backends = self._available_backends()
        if not backends:
            self.add_error("critical", "hardware_test", "no_device",
                           "no device is available: nothing can run")
            return self.errors[start:]
        settings = BenchmarkSettings(warmup=1, min_iterations=3, min_seconds=0.0)
        try:
            jobs, hook_errors = plan([model], backends, self.plugins, self.detection(),
                                     settings, every_device=True)
        except UsageError as exc:
            self.add_error("error", "hardware_test", "model_unresolved", str(exc),
                           details={"model": model})
            return self.errors[start:]
        for error in hook_errors:
            self._hook_finding("hardware_test", error)
        for job in jobs:
            self._run_finding(job.skip or run_job(job.request, self.timeout_s))
        return self.errors[start:]

    def summary(self) -> dict[str, int]:
        """Return the number of findings of each severity."""
        return {s: sum(e.severity == s for e in self.errors) for s in SEVERITIES}

    def to_dict(self) -> dict[str, Any]:
        """Return the findings, their counts by severity and the detected hardware."""
        report = self.detection()
        return {"errors": [e.to_dict() for e in self.errors], "summary": self.summary(),
                "hardware": [h.to_dict() for h in report.hardware],
                "detected_at": report.timestamp, "detection_cached": report.cached,
                "generated_at": _now()}

    def generate_report(self, format: str = "markdown") -> str:
        """Return the report as ``markdown`` (sections by severity) or ``json`` text."""
        if format == "json":
            return json.dumps(self.to_dict(), indent=2)
        if format == "markdown":
            return _markdown(self.to_dict())
        raise UsageError(f"unknown report format {format!r} (markdown or json)")

    def generate_compatibility_matrix(self) -> dict[str, Any]:
        """Return the compatibility matrix and the ``source`` it was computed from.

        ``history``: (model type, pipeline) rows x backends, each entry ``pass``, ``fail``
        or ``not-tested`` from the latest result of every model and device. ``templates``
        (no database, or one without results): pipeline rows x backends, each entry
        ``ready`` (the generated test composes and a device is here), ``template-only``
        (it composes, the backend is absent: ``reason`` says why) or ``missing``.
        """
        rows = self._latest_rows()
        if rows:
            return _history_matrix(rows, str(self.db_path))
        if self.db_path is None:
            return self._template_matrix("no history database given")
        return self._template_matrix(self._history_problem or f"no results in {self.db_path}")

    def save_to_file(self, content: str, path: Path | str) -> Path:
        """Write ``content`` to ``path`` (folders created); raise one clear HwaccelError."""
        target = Path(path).expanduser()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise HwaccelError(f"cannot write the report to {target}: "
                               f"{exc.strerror or exc}") from None
        return target

    def _loaded_names(self, kind: str) -> list[str]:
        return [r.name for r in self.plugins.loaded() if r.kind == kind]

    def _available_backends(self) -> list[str]:
        return list(dict.fromkeys(h.backend for h in self.detection().hardware if h.available))

    def _plugin_finding(self, record: PluginRecord) -> None:
        if record.status not in _PLUGIN_STATUS:
            return
        severity, error_type = _PLUGIN_STATUS[record.status]
        why = record.error or "disabled by HWACCEL_LOAD_PLUGINS or HWACCEL_DISABLE_PLUGINS"
        self.add_error(severity, "plugins", error_type,
                       f"plugin {record.name!r} ({record.distribution} {record.version}): {why}",
                       hardware=record.name if record.name in install_extras() else None,
                       details={"plugin": record.name, "distribution": record.distribution,
                                "version": record.version, "status": record.status,
                                "module": record.module})

    def _hook_finding(self, component: str, error: HookError) -> None:
        self.add_error("error", component, "hook_failed", str(error),
                       details={"plugin": error.plugin, "hook": error.hook})

    def _template_hook_errors(self) -> list[HookError]:
        """The errors of every template hook asked for each detected backend and pipeline."""
        errors: dict[HookError, None] = {}
        for pipeline in self._loaded_names("pipeline"):
            for backend in dict.fromkeys(h.backend for h in self.detection().hardware):
                _, found = self.plugins.call_each("hwaccel_template", backend=backend,
                                                  pipeline=pipeline)
                errors.update(dict.fromkeys(found))
        return list(errors)

    def _memory_finding(self, info: HardwareInfo, detected_at: str) -> None:
        total, free = info.memory_total_bytes, info.memory_available_bytes
        if not total or free is None or free >= LOW_MEMORY_FRACTION * total:
            return
        self.add_error("warning", "detection", "memory_pressure",
                       f"{info.backend} {info.device}: {free / 2**20:.0f} MiB of "
                       f"{total / 2**20:.0f} MiB free ({free / total:.1%}) at {detected_at}",
                       hardware=info.backend,
                       details={"device": info.device, "memory_total_bytes": total,
                                "memory_available_bytes": free, "free_fraction": free / total,
                                "detected_at": detected_at})

    def _resource_pool_findings(self) -> None:
        try:
            from hwaccel.compat.resource_pool import get_global_resource_pool

            stats = get_global_resource_pool().stats()
        except Exception as exc:  # noqa: BLE001 - a broken pool is a finding, not a crash
            self.add_error("error", "resource_pool", "resource_pool_failed",
                           f"the resource pool failed: {type(exc).__name__}: {exc}")
            return
        for item in stats.get("errors", ()):
            self.add_error(item.get("severity", "error"), "resource_pool",
                           item.get("error_type", "resource_pool"), item["message"],
                           hardware=item.get("hardware"), details=item.get("details"))

    def _model_findings(self, ref: ModelRef, classification: Classification) -> None:
        if not ref.loadable:
            missing = next(p for p in ref.components or (ref,) if not p.loadable)
            self.add_error("warning", "model_integration", "model_unavailable",
                           missing.unavailable_message(), details={"model": ref.spec})
        if not classification.workload:
            self.add_error("warning", "model_integration", "model_unclassified",
                           f"{ref.spec}: {classification.reason}",
                           details={"model": ref.spec, "family": classification.family,
                                    "pipeline": classification.pipeline,
                                    "signal": classification.signal})
            return
        for backend in self._available_backends():
            self._render_finding(ref.spec, classification, backend)

    def _render_finding(self, model: str, classification: Classification, backend: str) -> None:
        try:
            render(model, classification, backend, self.plugins)
        except (MissingSlotError, UsageError) as exc:
            error_type, message = "missing_template", str(exc)
        except HwaccelError as exc:
            error_type, message = "template_invalid", str(exc)
        else:
            return
        self.add_error("error", "model_integration", error_type, message, hardware=backend,
                       details={"model": model, "pipeline": classification.pipeline})

    def _run_finding(self, result: BenchmarkResult) -> None:
        where = (result.backend if result.device == result.backend
                 else f"{result.backend} {result.device}")
        details = {"model": result.model, "device": result.device,
                   "error_category": result.error_category, "p50_ms": result.p50_ms,
                   "load_time_s": result.load_time_s, "peak_rss_mb": result.peak_rss_mb}
        if result.success:
            self.add_error("info", "hardware_test", "stack_ok",
                           f"{where}: {result.model} ran, p50 {result.p50_ms:.3g} ms"
                           f"{label(result.details)}",
                           hardware=result.backend, details=details)
        else:
            self.add_error("error", "hardware_test", error_type_of(result.error_category),
                           f"{where}: {result.model} failed ({result.error_category}): "
                           f"{result.error}", hardware=result.backend, details=details)

    def _latest_rows(self) -> list[dict[str, Any]]:
        """The latest history row of every (model, backend, device), read once."""
        if self._history is None:
            self._history = self._read_history()
        return self._history

    def _read_history(self) -> list[dict[str, Any]]:
        if self.db_path is None:
            return []
        import duckdb

        try:
            with Store(self.db_path, read_only=True) as store:
                return store.latest_results()
        except (HwaccelError, duckdb.Error) as exc:
            self._history_problem = f"history database unreadable: {str(exc).splitlines()[0]}"
        self.add_error("warning", "history", "history_unavailable", self._history_problem,
                       details={"database": str(self.db_path)})
        return []

    def _history_finding(self, component: str, row: dict[str, Any]) -> None:
        status, reason = cell_status(row)
        if status == "pass":
            return
        self.add_error("error" if status == "fail" else "info", component,
                       error_type_of(row.get("error_category")),
                       f"{row.get('model_id')} on {row.get('hardware')} {row.get('device')} "
                       f"({status} in the history): {reason}", hardware=row.get("hardware"),
                       details={key: row.get(key) for key in (
                           "model_id", "device", "error_category", "run_id", "timestamp",
                           "memory_usage", "device_memory_usage")})

    def _template_matrix(self, note: str) -> dict[str, Any]:
        report = self.detection()
        backends = backend_order(h.backend for h in report.hardware)
        rows = [{"pipeline": pipeline,
                 "entries": {b: _template_entry(self.plugins, pipeline, b, report)
                             for b in backends}}
                for pipeline in self._loaded_names("pipeline")]
        return {"source": "templates", "note": note, "backends": backends, "rows": rows}


def _template_entry(plugins: Plugins, pipeline: str, backend: str,
                    report: DetectionReport) -> dict[str, Any]:
    """Whether the generated test of ``pipeline`` composes for ``backend``, and runs here."""
    try:
        parts_for(plugins, backend, pipeline)
    except HwaccelError as exc:
        return {"status": "missing", "reason": str(exc)}
    if report.available(backend):
        return {"status": "ready", "reason": None}
    reasons = [h.reason for h in report.hardware if h.backend == backend and h.reason]
    return {"status": "template-only", "reason": "; ".join(reasons) or "no device detected"}


def _history_matrix(rows: list[dict[str, Any]], database: str) -> dict[str, Any]:
    """(model type, pipeline) x backend from the latest history rows."""
    backends = backend_order(r["hardware"] for r in rows)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row.get("model_type") or "", row.get("pipeline") or "")].append(row)
    table = [{"model_type": model_type or None, "pipeline": pipeline or None,
              "models": sorted({r["model_id"] for r in members}),
              "entries": {b: _history_entry([r for r in members if r["hardware"] == b])
                          for b in backends}}
             for (model_type, pipeline), members in sorted(groups.items(),
                                                           key=lambda g: (g[0][1], g[0][0]))]
    return {"source": "history", "database": database, "backends": backends, "rows": table}


def _history_entry(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``fail`` if any latest row failed, else ``pass`` if any passed, else ``not-tested``."""
    statuses = [cell_status(r) for r in rows]
    for wanted in ("fail", "pass", "not-tested"):
        found = [reason for status, reason in statuses if status == wanted]
        if found:
            return {"status": wanted, "reason": found[0]}
    return {"status": "not-tested", "reason": "no recorded run"}


def _cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, lines joined."""
    text = "-" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _memory(info: dict[str, Any]) -> str:
    total, free = info["memory_total_bytes"], info["memory_available_bytes"]
    if not total or free is None:
        return "-"
    return f"{free / 2**30:.1f} / {total / 2**30:.1f} GiB"


def _markdown(data: dict[str, Any]) -> str:
    """Render :meth:`HardwareCompatibilityReporter.to_dict` as Markdown."""
    source = "from the cache" if data["detection_cached"] else "fresh"
    lines = ["# Hardware compatibility report", "",
             f"Generated {data['generated_at']}; hardware detected {data['detected_at']} "
             f"({source}).", "", "## Summary", "", "| severity | findings |", "|---|---|"]
    lines += [f"| {severity} | {count} |" for severity, count in data["summary"].items()]
    lines += ["", "## Hardware", "", "| backend | device | available | memory free / total "
              "| reason |", "|---|---|---|---|---|"]
    lines += [f"| {_cell(h['backend'])} | {_cell(h['device'])} | "
              f"{'yes' if h['available'] else 'no'} | {_memory(h)} | {_cell(h['reason'])} |"
              for h in data["hardware"]]
    for severity in SEVERITIES:
        found = [e for e in data["errors"] if e["severity"] == severity]
        if found:
            lines += ["", f"## {_TITLES[severity]} ({len(found)})"]
            for error in found:
                lines += _markdown_error(error)
    if not data["errors"]:
        lines += ["", "No findings."]
    return "\n".join(lines) + "\n"


def _markdown_error(error: dict[str, Any]) -> list[str]:
    where = " · ".join(str(p) for p in (error["component"], error["hardware"]) if p)
    lines = ["", f"### {where}: {error['error_type']}", "", error["message"]]
    if error["recommendations"]:
        lines += ["", "Recommendations:", ""]
        lines += [f"- {advice}" for advice in error["recommendations"]]
    return lines
