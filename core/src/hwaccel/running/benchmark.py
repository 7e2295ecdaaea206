"""Plan and run benchmark jobs for models x backends, recording every outcome.

Planning happens before any job starts: every model is resolved and classified and every
backend name checked, so bad input fails at once and nothing half-runs. Each job then runs in
its own process (:func:`hwaccel.running.runner.run_job`) and its result, success or failure, is
written to the database by this process as soon as it arrives, the database opened for that
write only (so other hwaccel processes can use it between writes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.errors import UsageError
from hwaccel.hardware.detection import DetectionReport
from hwaccel.history.provenance import fingerprint, library_versions
from hwaccel.history.store import Store
from hwaccel.kit.failures import DETECTION_FAILED, failure
from hwaccel.models.classify import classify_ref
from hwaccel.models.resolve import resolve_model
from hwaccel.plugins import HookError, Plugins
from hwaccel.running.jobs import JobPool
from hwaccel.running.runner import run_job
from hwaccel.types import (
    QUANTIZED_PRECISIONS,
    BenchmarkRequest,
    BenchmarkResult,
    BenchmarkSettings,
    Classification,
    HardwareInfo,
    ModelRef,
)


@dataclass(frozen=True)
class Job:
    """One planned (model, device) benchmark; ``skip`` holds a failure decided in advance.

    ``details`` is added to the row's details (how the batch size was chosen); with
    ``shrink_on_oom`` (a batch size chosen from the memory estimate, not asked for) a run
    killed for memory is recorded, then tried again at :data:`SHRINK` times the batch, up to
    :data:`MAX_SHRINKS` times, so the batch that ends up in the row is one a run confirmed.
    """

    request: BenchmarkRequest
    skip: BenchmarkResult | None = None
    details: dict[str, Any] = field(default_factory=dict)
    shrink_on_oom: bool = False


SHRINK = 0.75
MAX_SHRINKS = 4


def _absent(backend: str, report: DetectionReport) -> HardwareInfo:
    known = [h for h in report.hardware if h.backend == backend]
    reasons = dict.fromkeys(h.reason for h in known if h.reason)  # devices share one reason
    reason = "; ".join(reasons) or "no device detected"
    error = None if known else report.detection_error(backend)
    if error:
        reason = f"its detection failed: {error}"
    return HardwareInfo(backend=backend, device=backend, name=backend, available=False,
                        reason=reason, plugin=known[0].plugin if known else None,
                        details={"detection_error": error} if error else {})


def _targets(spec: str, report: DetectionReport, every_device: bool, with_absent: bool
             ) -> list[tuple[HardwareInfo, bool]]:
    """Resolve ``BACKEND`` or ``BACKEND:DEVICE`` to the devices to measure, each with whether
    it is available.

    A device is named as ``hwaccel detect`` and the matrix label it (``web:wasm``,
    ``cuda:1``, ``openvino:GPU.0``). A backend with no available device yields one absent
    record with the reason; ``with_absent`` (with ``every_device``) adds the backend's
    unavailable devices beside its available ones.
    """
    known = {h.backend for h in report.hardware}
    backend = spec if spec in known else spec.split(":", 1)[0]
    if spec == backend:
        devices = report.available(backend)
        if not devices:
            return [(_absent(backend, report), False)]
        if not every_device:
            return [(devices[0], True)]
        if not with_absent:
            return [(h, True) for h in devices]
        return [(h, h.available) for h in report.hardware if h.backend == backend]
    name = spec.split(":", 1)[1]
    records = [h for h in report.hardware if h.backend == backend and h.device in (spec, name)]
    if not records:
        labels = [h.device if h.device.split(":")[0] == backend else f"{backend}:{h.device}"
                  for h in report.hardware if h.backend == backend]
        raise UsageError(f"backend {backend!r} has no device {name!r} (its devices: "
                         f"{', '.join(labels)})")
    available = [h for h in records if h.available]
    return [(h, True) for h in available] or [(records[0], False)]


def plan(models: list[str], backends: list[str], plugins: Plugins, report: DetectionReport,
         settings: BenchmarkSettings, *, every_device: bool = False, with_absent: bool = False
         ) -> tuple[list[Job], list[HookError]]:
    """Return the jobs for every (model, backend); raise :class:`UsageError` on bad input.

    A backend's first available device is measured, or each of them with ``every_device``
    (and with ``with_absent`` its unavailable devices too, decided in advance);
    ``BACKEND:DEVICE`` measures that one device. A backend (or a named device) that is not
    available gets one job decided in advance as ``unavailable``, with the reason.
    """
    known = set(report.known_backends())
    unknown = [b for b in backends if b not in known and b.split(":", 1)[0] not in known]
    if unknown:
        raise UsageError(f"unknown backend {', '.join(map(repr, unknown))} "
                         f"(known backends: {', '.join(sorted(known)) or 'none'})")
    targets = [target for spec in dict.fromkeys(backends)
               for target in _targets(spec, report, every_device, with_absent)]
    errors: list[HookError] = []
    classified: list[tuple[ModelRef, Classification]] = []
    for model in dict.fromkeys(models):
        ref = resolve_model(model)
        outcome = classify_ref(ref, plugins)
        errors.extend(outcome.errors)
        classified.append((ref, outcome.classification))
    jobs = []
    for ref, classification in classified:
        for hardware, present in targets:
            request = BenchmarkRequest(model=ref.spec, hardware=hardware,
                                       classification=classification, settings=settings)
            jobs.append(Job(request, _decided(request, ref, present)))
    return jobs, errors


def _decided(request: BenchmarkRequest, ref: ModelRef, present: bool) -> BenchmarkResult | None:
    """The failure a job meets before it starts (absent device, no workload, no files)."""
    if not present:
        hardware = request.hardware
        name = hardware.backend if hardware.device == hardware.backend \
            else f"{hardware.backend}:{hardware.device}"
        if hardware.details.get("detection_error"):
            return failure(request, DETECTION_FAILED, f"{name} was not tested: "
                                                      f"{hardware.reason}")
        return failure(request, "unavailable", f"{name} is absent: {hardware.reason}")
    if not request.classification.workload:
        return failure(request, "unsupported", request.classification.reason)
    precision = request.settings.precision
    if precision in QUANTIZED_PRECISIONS and precision not in request.hardware.capabilities:
        hardware = request.hardware
        return failure(request, "unsupported",
                       f"{precision} runs a quantized model, and {hardware.device} does not "
                       f"declare {precision} (its capabilities: "
                       f"{', '.join(hardware.capabilities) or 'none'})")
    if not ref.loadable:
        missing = next(p for p in ref.components or (ref,) if not p.loadable)
        return failure(request, "model-unavailable", missing.unavailable_message())
    return None


def benchmark_pool(memory_limit_mb: float | None = None) -> JobPool:
    """A job pool for benchmark jobs only (its zygote does not preload pytest)."""
    return JobPool(memory_limit_mb=memory_limit_mb, kinds=("benchmark",))


def run(jobs: list[Job], db_path: Path, run_id: str, timeout_s: float,
        memory_limit_mb: float | None = None,
        on_start: Callable[[Job], None] | None = None,
        on_done: Callable[[Job, BenchmarkResult], None] | None = None,
        pool: JobPool | None = None) -> list[BenchmarkResult]:
    """Run the jobs one after another, storing each result in the database at ``db_path``
    as soon as it is known; a job above ``memory_limit_mb`` of resident memory is killed and
    recorded as ``oom``. ``pool`` (:func:`benchmark_pool`, started early by the caller)
    defaults to a pool of its own."""
    if pool is None:
        with benchmark_pool(memory_limit_mb) as own:
            return run(jobs, db_path, run_id, timeout_s, on_start=on_start, on_done=on_done,
                       pool=own)
    results = []
    for job in jobs:
        if on_start:
            on_start(job)
        result = _run_one(job, timeout_s, pool, db_path, run_id)
        results.append(result)
        if on_done:
            on_done(job, result)
    return results


def _run_one(job: Job, timeout_s: float, pool: JobPool, db_path: Path,
             run_id: str) -> BenchmarkResult:
    """Run one job (and its smaller retries, see :class:`Job`), storing every outcome;
    return the last."""
    request, tried = job.request, []
    while True:
        result = stamped(job.skip or run_job(request, timeout_s, pool), request)
        if job.details or tried:
            result = dataclasses.replace(result, details={
                **result.details, **job.details,
                **({"oom_at_batch_sizes": list(tried)} if tried else {})})
        with Store(db_path) as store:
            store.insert_result(result, request.classification, run_id, source="benchmark")
        batch = request.settings.batch_size
        if not (job.shrink_on_oom and result.error_category == "oom" and batch > 1
                and len(tried) < MAX_SHRINKS):
            return result
        tried.append(batch)
        request = dataclasses.replace(request, settings=dataclasses.replace(
            request.settings, batch_size=max(1, int(batch * SHRINK))))


def stamped(result: BenchmarkResult, request: BenchmarkRequest) -> BenchmarkResult:
    """Add versions and the hardware fingerprint to a result decided outside a job."""
    if result.versions:
        return result
    return dataclasses.replace(result, versions=library_versions(),
                               hardware_fingerprint=fingerprint(request.hardware))
