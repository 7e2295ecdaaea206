"""Recommendations: the devices for a model, the models for a task; every choice explained.

**Devices for a model.** Every detected device is a candidate. A device is rejected, with
the reason, when its backend does not support the model (:mod:`hwaccel.estimates.support`: nothing
composes a test for it, or it failed there in the history) or when the estimated peak
(:mod:`hwaccel.estimates.resources`) is above its free memory. The others are ranked by the measured
median latency of this model in the history (the latest successful run on each device,
at the same batch size and sequence length when there is one); devices never measured for
this model come after, in device priority: the backends' declared priorities (CUDA, ROCm,
MPS, OpenVINO for hwaccel's own; :func:`hwaccel.hardware.devices.default_priority`), then any
other backend, the last resort (the CPU) last.

**Models for a task.** Candidates are the models of the local Hugging Face cache whose
classification is the task's (TAXONOMY.md's label of the task) and the pipelines' catalogue
entries published for the task (:mod:`hwaccel.models.catalogue`). Each gets its device
recommendation; models that fit a device come first, then those runnable offline now (files
on this machine), then by measured latency, then by estimated peak memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError, UsageError
from hwaccel.estimates.calibration import device_label
from hwaccel.estimates.resources import Estimator, ResourceEstimate
from hwaccel.estimates.support import BackendSupport, backend_support
from hwaccel.hardware.backends import Backends
from hwaccel.hardware.simulators import is_simulator
from hwaccel.types import Classification, HardwareInfo


@dataclass(frozen=True)
class Candidate:
    """A device that can run the model, with why it is ranked where it is."""

    backend: str
    device: str
    torch_device: str
    reason: str
    p50_ms: float | None = None
    estimate: ResourceEstimate | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"backend": self.backend, "device": self.device,
                "torch_device": self.torch_device, "reason": self.reason,
                "p50_ms": self.p50_ms,
                "estimate": self.estimate.to_dict() if self.estimate else None}


@dataclass(frozen=True)
class Rejection:
    """A device that is not recommended, and why."""

    backend: str
    device: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"backend": self.backend, "device": self.device, "reason": self.reason}


@dataclass(frozen=True)
class DeviceRecommendation:
    """The ranked devices for one model, the rejected ones, and the backends' support."""

    model: str
    classification: Classification
    ranked: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    support: dict[str, BackendSupport] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> Candidate | None:
        """The recommended device, or ``None`` when every device was rejected."""
        return self.ranked[0] if self.ranked else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        best = self.best
        return {"model": self.model, "classification": self.classification.to_dict(),
                "recommended": best.to_dict() if best else None,
                "ranked": [c.to_dict() for c in self.ranked],
                "rejected": [r.to_dict() for r in self.rejected],
                "hardware_profile": {b: s.to_dict() for b, s in self.support.items()},
                "notes": list(self.notes)}


def priority_of(hardware: HardwareInfo, backends: Backends) -> tuple[int, int, int]:
    """Sort key of device priority: the declared order, then the backends that declare no
    priority, then the last resort; within a backend, its devices' ranks and indices."""
    last = backends.last_resort_names()
    order = [b for b in backends.default_priority() if b not in last]
    backend = hardware.backend
    position = order.index(backend) if backend in order else \
        (len(order) + 1 if backend in last else len(order))
    return position, hardware.rank, hardware.index


def _history(db_path: Path | None, model: str) -> list[dict[str, Any]]:
    """The latest row of ``model`` per (backend, device) in the history (none without one)."""
    if db_path is None or not Path(db_path).is_file():
        return []
    import duckdb

    from hwaccel.history.store import Store

    try:
        with Store(db_path, read_only=True) as store:
            return store.latest_results([model], by_fingerprint=True)
    except (HwaccelError, duckdb.Error):
        return []


def _latency(db_path: Path | None, model: str, hardware: HardwareInfo, batch_size: int,
             seq_len: int) -> tuple[float, str] | None:
    """The latest measured p50 of ``model`` on this very device (its hardware fingerprint)
    and where it comes from; a run at the same batch size and sequence length wins."""
    if db_path is None or not Path(db_path).is_file():
        return None
    import duckdb

    from hwaccel.history.provenance import fingerprint
    from hwaccel.history.store import Store

    try:
        with Store(db_path, read_only=True) as store:
            rows = store.query(
                "SELECT p50_ms, run_id, timestamp, batch_size, seq_len FROM hardware_results "
                "WHERE model_id = ? AND hardware = ? AND device = ? "
                "AND hardware_fingerprint = ? AND success AND p50_ms IS NOT NULL "
                "AND (test_status IS NULL OR test_status = 'passed') "
                "ORDER BY (batch_size = ? AND seq_len = ?) DESC, timestamp DESC, id DESC "
                "LIMIT 1", [model, hardware.backend, hardware.device, fingerprint(hardware),
                            batch_size, seq_len])
    except (HwaccelError, duckdb.Error):
        return None
    if not rows:
        return None
    row = rows[0]
    stamp = row["timestamp"].isoformat(sep=" ", timespec="minutes")
    return float(row["p50_ms"]), (f"run {str(row['run_id'])[:8]}, {stamp} UTC, batch "
                                  f"{row['batch_size']}, sequence {row['seq_len']}")


def recommend_devices(model: str, estimator: Estimator, *,
                      backends: Iterable[str] | None = None, batch_size: int = 1,
                      seq_len: int = 32, precision: str = "fp32") -> DeviceRecommendation:
    """Rank the detected devices for ``model`` (see the module docstring).

    :param backends: consider only these backends (every detected one when ``None``).
    :raises UsageError: an unknown backend name or a bad model reference.
    """
    report = estimator.report
    facts = report.backend_facts()
    wanted = report.check_backends(list(backends)) if backends is not None \
        else sorted({h.backend for h in report.hardware})
    classification = estimator.classification(model)
    devices = estimator.devices(wanted)
    notes: list[str] = []
    estimates: dict[str, ResourceEstimate] = {}
    if classification.workload:
        try:
            estimates = {e.device: e for e in estimator.estimate_all(
                [model], devices, batch_size=batch_size, seq_len=seq_len,
                precision=precision)}
        except HwaccelError as exc:
            notes.append(f"memory not estimated: {exc}")
    rows = _history(estimator.db_path, model)
    support = backend_support(estimator.plugins, report, classification, rows,
                              estimates.values())
    rejected = [Rejection(b, b, support[b].reasons[-1]) for b in wanted
                if not support[b].system_available]
    scored: list[tuple[tuple[Any, ...], Candidate]] = []
    for hardware in devices:
        label = device_label(hardware)
        backend = support[hardware.backend]
        estimate = estimates.get(label)
        if not backend.declared:
            rejected.append(Rejection(hardware.backend, label, backend.reasons[0]))
            continue
        if label in backend.ruled_out:
            rejected.append(Rejection(hardware.backend, label, backend.ruled_out[label]))
            continue
        if is_simulator(hardware):
            rejected.append(Rejection(hardware.backend, label, (
                f"{hardware.name} is a simulator of that hardware on this machine's CPU: "
                "its compatibility and accuracy results hold for the device, its latency "
                "does not, so it is not a device to run on")))
            continue
        if estimate is not None and estimate.fits is False:
            rejected.append(Rejection(hardware.backend, label,
                                      f"estimate exceeds its free memory: {estimate.reason}"))
            continue
        memory = f"; {estimate.reason}" if estimate is not None else ""
        measured = _latency(estimator.db_path, model, hardware, batch_size, seq_len)
        if measured is not None:
            p50, where = measured
            reason = f"measured p50 {p50:,.3f} ms ({where}){memory}"
            key: tuple[Any, ...] = (0, p50, priority_of(hardware, facts))
        else:
            p50 = None
            reason = ("not measured for this model yet: ranked by device priority "
                      f"({', '.join(_priority_names(facts))}){memory}")
            key = (1, 0.0, priority_of(hardware, facts))
        scored.append((key, Candidate(hardware.backend, label, hardware.address,
                                      reason, p50, estimate)))
    ranked = tuple(c for _, c in sorted(scored, key=lambda item: item[0]))
    return DeviceRecommendation(model=model, classification=classification, ranked=ranked,
                                rejected=tuple(rejected), support=support,
                                notes=tuple(notes))


def _priority_names(backends: Backends) -> list[str]:
    """The device order in words: the declared priorities, others, the last resort."""
    last = backends.last_resort_names()
    return [*(b for b in backends.default_priority() if b not in last), "others", *last]


# ---- models for a task -----------------------------------------------------------------------


def task_label(task: str) -> Any:
    """TAXONOMY.md's label of a task name (``text-generation``, ``fill-mask``, ...).

    :raises UsageError: a task no rule of TAXONOMY.md places.
    """
    from hwaccel.kit.taxonomy import PIPELINE_TASKS, reference_label, task_names

    label = reference_label("", task_names((task,)))
    if label.family == "unknown":
        raise UsageError(f"unknown task {task!r} (known tasks: "
                         f"{', '.join(sorted(PIPELINE_TASKS))})")
    return label


def matches_task(label: Any, classification: Classification) -> bool:
    """Whether a classified model does what the task's label describes: the same family,
    the same generation style for text generation, the same pipeline among multimodal
    ones (zero-shot matching or image-to-text: TAXONOMY's families whose tasks need the
    same pipeline)."""
    from hwaccel.kit.taxonomy import task_needs_same_pipeline
    if classification.family != label.family:
        return False
    if label.family == "text_generation" and label.subfamily:
        return classification.subfamily == label.subfamily
    if task_needs_same_pipeline(label.family):
        return classification.pipeline == label.pipeline
    return True


def task_candidates(task: str, estimator: Estimator) -> list[tuple[str, str]]:
    """(model, where it was found) for the task: the local cache, then the catalogue."""
    from hwaccel.models.catalogue import load_catalogue
    from hwaccel.models.resolve import cached_models

    label = task_label(task)
    found: dict[str, str] = {}
    for model in cached_models():
        try:
            classification = estimator.classification(model)
        except HwaccelError:
            continue
        if matches_task(label, classification):
            found[model] = "hf-cache"
    entries, _ = load_catalogue(estimator.plugins)
    for entry in entries:
        if task in entry.tasks and entry.id not in found:
            found[entry.id] = f"catalogue of {entry.plugin}"
    return list(found.items())


def recommend_models(task: str, estimator: Estimator, *,
                     backends: Iterable[str] | None = None, batch_size: int = 1,
                     seq_len: int = 32) -> list[tuple[str, DeviceRecommendation]]:
    """The models for ``task``, ranked, each with its device recommendation."""
    results = []
    for model, source in task_candidates(task, estimator):
        recommendation = recommend_devices(model, estimator, backends=backends,
                                           batch_size=batch_size, seq_len=seq_len)
        results.append((source, recommendation))

    def key(item: tuple[str, DeviceRecommendation]) -> tuple[Any, ...]:
        source, rec = item
        best = rec.best
        peak = best.estimate.peak_mb if best and best.estimate else None
        return (best is None, source != "hf-cache",
                best.p50_ms if best and best.p50_ms is not None else float("inf"),
                peak if peak is not None else float("inf"), rec.model)

    return sorted(results, key=key)

