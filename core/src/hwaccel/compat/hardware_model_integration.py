"""The predecessor's hardware-aware classifier, on hwaccel's measured parts.

``HardwareAwareModelClassifier`` and :func:`get_hardware_aware_model_classification` keep
the predecessor's names, arguments and result keys (``family``, ``subfamily``,
``confidence``, ``hardware_profile``, ``recommended_hardware``, ``recommended_template``,
``resource_requirements``, ``torch_device``). What fills them is hwaccel's own:

* classification by :mod:`hwaccel.models.classify` (the TAXONOMY labels and the pipelines' claims);
* ``hardware_profile``: per detected backend, what the plugins declare and the history
  measured (:mod:`hwaccel.estimates.support`), with the estimated peak memory on its devices;
* ``recommended_hardware`` and ``torch_device``: the first device of
  :func:`hwaccel.estimates.recommend.recommend_devices`, with the reasons of every choice and
  rejection;
* ``resource_requirements``: the estimate on that device (:mod:`hwaccel.estimates.resources`; the
  CPU's when no device can run the model; the whole estimate is ``resource_estimate``):
  ``min_memory_mb`` is the peak of one call at the requested batch size and sequence
  length, ``recommended_memory_mb`` the peak at the model's full context length (the same
  for models without one), ``cpu_cores``, ``disk_space_mb``, ``batch_size`` (the one asked
  for) and ``max_batch_size`` (the largest that fits the free memory).

Detection results are cached on disk (``hardware_cache_path``) and classifications in
memory and, with ``model_db_path``, in a JSON file keyed by the model, its evidence and
the installed plugins.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwaccel.errors import UsageError
from hwaccel.estimates.calibration import device_label
from hwaccel.estimates.resources import Estimator, ResourceEstimate
from hwaccel.hardware.detection import DetectionReport, detect
from hwaccel.kit import jsoncache
from hwaccel.plugins import Plugins

_MODEL_DB_FORMAT = 1


class HardwareAwareModelClassifier:
    """Classifies models with the hardware they should run on (see the module docstring).

    :param hardware_cache_path: the detection cache file (default: hwaccel's own).
    :param model_db_path: a JSON file that keeps classifications between processes.
    :param force_refresh: detect the hardware again instead of using the cache.
    :param db_path: the DuckDB history whose measurements refine estimates and rankings
        (default: ``HWACCEL_DB`` or hwaccel's default database, when it exists).
    :param measure: measure runtime baselines that the history and cache lack (a few
        seconds per device, once).
    :param plugins: the loaded plugins (default: the installed ones).
    :param estimator: an estimator to share (its plugins, detection and history are used).
    """

    def __init__(self, hardware_cache_path: str | Path | None = None,
                 model_db_path: str | Path | None = None, force_refresh: bool = False, *,
                 db_path: str | Path | None = None, measure: bool = True,
                 plugins: Plugins | None = None, estimator: Estimator | None = None):
        from hwaccel.kit.paths import default_db_path
        from hwaccel.plugins import get_plugins

        self.plugins = estimator.plugins if estimator else plugins or get_plugins()
        self.hardware_cache_path = Path(hardware_cache_path) if hardware_cache_path else None
        self.force_refresh = force_refresh
        self.model_db_path = Path(model_db_path).expanduser() if model_db_path else None
        self.db_path = estimator.db_path if estimator else (
            Path(db_path).expanduser() if db_path else default_db_path())
        self.measure = measure
        self._report: DetectionReport | None = estimator.report if estimator else None
        self._estimator: Estimator | None = estimator
        self._classifications: dict[str, dict[str, Any]] = {}

    # ---- caches ----------------------------------------------------------------------

    def detect(self) -> DetectionReport:
        """The detected hardware (once per classifier; cached on disk between processes)."""
        if self._report is None:
            self._report = detect(self.plugins, refresh=self.force_refresh,
                                  path=self.hardware_cache_path)
        return self._report

    @property
    def estimator(self) -> Estimator:
        """The resource estimator over this classifier's detection and history."""
        if self._estimator is None:
            self._estimator = Estimator(self.plugins, self.detect(), db_path=self.db_path,
                                        measure=self.measure)
        return self._estimator

    def _classification(self, model_name: str, model_class: str | None,
                        tasks: tuple[str, ...]) -> dict[str, Any]:
        """The classification dict, from the memory or file cache when it is there."""
        from hwaccel.models.catalogue import with_catalogue_config
        from hwaccel.models.classify import classify_ref
        from hwaccel.models.resolve import resolve_model
        from hwaccel.types import Classification

        key = "|".join([model_name, model_class or "", ",".join(tasks),
                        *sorted(f"{r.name}={r.version}" for r in self.plugins.loaded())])
        ref = with_catalogue_config(resolve_model(model_name, model_class=model_class,
                                                  tasks=tasks), self.plugins)
        self.estimator.remember(model_name, ref=ref)
        if key not in self._classifications:
            stored = self._read_model_db()
            if key in stored:
                self._classifications[key] = stored[key]
            else:
                found = classify_ref(ref, self.plugins).classification.to_dict()
                self._classifications[key] = found
                if self.model_db_path is not None:
                    jsoncache.write(self.model_db_path, {
                        "format": _MODEL_DB_FORMAT, "classifications": {**stored, key: found}})
        found = self._classifications[key]
        self.estimator.remember(model_name, classification=Classification.from_dict(found))
        return found

    def _read_model_db(self) -> dict[str, Any]:
        if self.model_db_path is None:
            return {}
        data = jsoncache.read(self.model_db_path)
        if isinstance(data, dict) and data.get("format") == _MODEL_DB_FORMAT \
                and isinstance(data.get("classifications"), dict):
            return data["classifications"]
        return {}

    # ---- the predecessor's API -------------------------------------------------------

    def classify_model(self, model_name: str, model_class: str | None = None,
                       tasks: Iterable[str] | None = None, methods: Iterable[str] | None = None,
                       hw_compat_override: dict[str, dict[str, Any]] | None = None, *,
                       batch_size: int = 1, seq_len: int = 32,
                       backends: Iterable[str] | None = None) -> dict[str, Any]:
        """Classify ``model_name`` and say which hardware suits it and what it needs.

        :param model_class: the class name, as evidence (``GPT2LMHeadModel``).
        :param tasks: tasks, as evidence (``["text-generation"]``).
        :param methods: accepted for the predecessor's callers; hwaccel decides from
            configs, class names and tasks, not from method names, so they are only echoed.
        :param hw_compat_override: per backend, keys that replace the computed
            ``hardware_profile`` entry (``{"mps": {"compatible": False}}``); a backend
            overridden as incompatible is not recommended.
        :param backends: consider only these backends' devices (default: every one).
        """
        from hwaccel.estimates.recommend import recommend_devices

        tasks = tuple(tasks or ())
        classification = self._classification(model_name, model_class, tasks)
        recommendation = recommend_devices(model_name, self.estimator, batch_size=batch_size,
                                           seq_len=seq_len, backends=backends)
        profile = {backend: support.to_dict()
                   for backend, support in recommendation.support.items()}
        for candidate in recommendation.ranked:
            if candidate.estimate is not None:
                entry = profile[candidate.backend].setdefault("memory_usage", {})
                entry[candidate.device] = {"peak": candidate.estimate.peak_mb,
                                           "source": candidate.estimate.source}
        ranked = list(recommendation.ranked)
        for backend, override in (hw_compat_override or {}).items():
            profile[backend] = {**profile.get(backend, {}), **override, "overridden": True}
            if override.get("compatible") is False:
                ranked = [c for c in ranked if c.backend != backend]
        best = ranked[0] if ranked else None
        estimate = best.estimate if best else self._fallback_estimate(recommendation)
        return {
            **classification, "model_name": model_name, "methods": list(methods or ()),
            "hardware_profile": profile,
            "recommended_hardware": best.backend if best else None,
            "recommended_device": best.device if best else None,
            "torch_device": best.torch_device if best else None,
            "recommendation": recommendation.to_dict(),
            "recommended_template": self._template(classification.get("pipeline"),
                                                   best.backend if best else None),
            "resource_requirements": self._requirements(model_name, estimate, batch_size,
                                                        seq_len),
            "resource_estimate": estimate.to_dict() if estimate else None,
        }

    def recommend_model_for_task(self, task: str,
                                 hardware_constraints: Iterable[str] | None = None
                                 ) -> dict[str, Any]:
        """Models for ``task`` (the local cache and the pipelines' catalogues), ranked,
        each with the hardware to run it on; ``hardware_constraints`` limits the backends."""
        from hwaccel.estimates.recommend import recommend_models

        constraints = list(hardware_constraints) if hardware_constraints else None
        found = recommend_models(task, self.estimator, backends=constraints)
        entries = []
        for source, rec in found:
            best = rec.best
            estimate = best.estimate if best else self._fallback_estimate(rec)
            entries.append({
                "model_name": rec.model, "source": source,
                "family": rec.classification.family,
                "subfamily": rec.classification.subfamily,
                "pipeline": rec.classification.pipeline,
                "confidence": rec.classification.confidence,
                "recommended_hardware": best.backend if best else None,
                "torch_device": best.torch_device if best else None,
                "reason": best.reason if best else "; ".join(
                    f"{r.device}: {r.reason}" for r in rec.rejected),
                "resource_requirements": self._requirements(rec.model, estimate, 1, 32)})
        return {"task": task, "hardware_constraints": constraints or [],
                "recommendations": entries}

    def get_compatible_models_for_hardware(self, models: Iterable[str], hw: str) -> list[str]:
        """The models among ``models`` that backend ``hw`` supports (declared, and not
        ruled out by the history or by memory)."""
        known = {h.backend for h in self.detect().hardware}
        if hw not in known:
            raise UsageError(f"unknown backend {hw!r} (detected backends: "
                             f"{', '.join(sorted(known))})")
        return [m for m in models
                if self.classify_model(m)["hardware_profile"][hw]["compatible"]]

    def get_optimal_resource_pool_config(self, models: Iterable[str], *,
                                         backends: Iterable[str] | None = None
                                         ) -> dict[str, Any]:
        """The resource pool configuration for holding ``models`` together (see
        :func:`hwaccel.compat.resource_pool.pool_config`), on ``backends`` (default: every one)."""
        from hwaccel.compat.resource_pool import pool_config

        backends = list(backends) if backends is not None else None
        return pool_config([(m, self.classify_model(m, backends=backends)) for m in models],
                           self.estimator)

    # ---- helpers ---------------------------------------------------------------------

    def _template(self, pipeline: str | None, backend: str | None) -> str | None:
        """The pipeline's test template (``package/file.py.j2``) for a file that targets
        ``backend`` (the recommended one); ``None`` when no device is recommended."""
        if not pipeline or not backend:
            return None
        parts, _ = self.plugins.call_each("hwaccel_template", backend=backend, pipeline=pipeline)
        return next((p.source for _, p in parts if p.owner == "pipeline"
                     and p.name == pipeline), None)

    def _fallback_estimate(self, recommendation: Any) -> ResourceEstimate | None:
        """The CPU's estimate when no device is recommended (requirements still show)."""
        from hwaccel.errors import HwaccelError

        host = self.estimator.devices(
            list(self.estimator.report.backend_facts().last_resort_names()))
        if not host or not recommendation.classification.workload:
            return None
        try:
            return self.estimator.estimate(recommendation.model, host[0])
        except HwaccelError:
            return None

    def _requirements(self, model: str, estimate: ResourceEstimate | None, batch_size: int,
                      seq_len: int) -> dict[str, Any]:
        """The predecessor's ``resource_requirements`` keys, from an estimate."""
        if estimate is None:
            return {"min_memory_mb": None, "recommended_memory_mb": None, "cpu_cores": None,
                    "disk_space_mb": None, "batch_size": batch_size, "max_batch_size": None,
                    "source": None, "basis": ["not estimated: no pipeline runs the model, "
                                              "or its config is not on this machine"]}
        full = estimate
        context = self.estimator.footprint(model, seq_len).context_length
        if context and context > seq_len:
            hardware = next(h for h in self.estimator.devices([estimate.backend])
                            if device_label(h) == estimate.device)
            full = self.estimator.estimate(model, hardware, batch_size=batch_size,
                                           seq_len=context, precision=estimate.precision)
        return {"min_memory_mb": _round(estimate.peak_mb),
                "recommended_memory_mb": _round(full.peak_mb),
                "recommended_seq_len": full.seq_len,
                "cpu_cores": estimate.cpu_cores, "disk_space_mb": _round(estimate.disk_mb),
                "batch_size": batch_size, "max_batch_size": estimate.max_batch_size,
                "device": estimate.device, "device_memory_mb": _round(estimate.device_peak_mb),
                "phases": {"load": _round(estimate.load_peak_mb),
                           "inference": _round(estimate.inference_peak_mb),
                           "generation": _round(estimate.generation_peak_mb)},
                "source": estimate.source, "basis": list(estimate.basis)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def get_hardware_aware_model_classification(model_name: str, model_class: str | None = None,
                                            tasks: Iterable[str] | None = None,
                                            **options: Any) -> dict[str, Any]:
    """Classify one model with a fresh :class:`HardwareAwareModelClassifier`.

    :param options: passed to the classifier (``hardware_cache_path``, ``db_path``, ...).
    """
    return HardwareAwareModelClassifier(**options).classify_model(
        model_name, model_class=model_class, tasks=tasks)

