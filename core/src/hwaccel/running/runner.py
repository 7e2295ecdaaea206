"""Benchmark jobs and generated-test jobs, each in its own process with a time limit.

A benchmark is two passes, each a fresh process (:mod:`hwaccel.running.jobs`): the timing pass
(cold call, warm-up, timed calls, and the comparison with the CPU reference where the
backend makes one), then the memory pass, which loads the model and runs it without any
timing loop or reference copy, so that its kernel high-water mark (``VmHWM``) is the peak
of this model on this device alone. A crash, a hang or an out-of-memory kill becomes a
failed :class:`BenchmarkResult` with its category, never a lost run. Only the calling
process writes the database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hwaccel.kit.failures import failure, job_end_category
from hwaccel.running.jobs import JobOutcome, JobPool
from hwaccel.types import BenchmarkRequest, BenchmarkResult

#: memory figures of the memory pass kept with the result: the high-water mark once the model
#: is loaded, and that of processes a backend starts beside the job (a browser), in MiB
MEMORY_DETAILS = ("load_peak_rss_mb", "helper_peak_rss_mb")


def memory_pass(request: BenchmarkRequest) -> BenchmarkRequest:
    """The request of the memory pass: one warm-up and one call, no timing loop."""
    settings = dataclasses.replace(request.settings, measure="memory", warmup=1,
                                   min_iterations=1, min_seconds=0.0)
    return dataclasses.replace(request, settings=settings)


def _result_of(request: BenchmarkRequest, outcome: JobOutcome) -> BenchmarkResult:
    if outcome.status == "ok" and outcome.result is not None:
        return dataclasses.replace(BenchmarkResult.from_dict(outcome.result),
                                   wall_time_s=outcome.wall_s)
    return dataclasses.replace(
        failure(request, job_end_category(outcome.status), outcome.message),
        wall_time_s=outcome.wall_s)


def run_job(request: BenchmarkRequest, timeout_s: float, pool: JobPool | None = None,
            cpus: list[int] | None = None) -> BenchmarkResult:
    """Benchmark ``request``: a timing pass, then a memory pass, each killed after
    ``timeout_s`` seconds. ``pool`` defaults to a pool of its own for this call."""
    if pool is None:
        with JobPool() as own:
            return run_job(request, timeout_s, own, cpus)
    timed = _result_of(request, pool.run("benchmark", request.to_dict(), timeout_s=timeout_s,
                                         cpus=cpus))
    if not timed.success:
        return timed
    memory = _result_of(request, pool.run("benchmark", memory_pass(request).to_dict(),
                                          timeout_s=timeout_s, cpus=cpus))
    if not memory.success:
        return dataclasses.replace(
            timed, peak_rss_mb=None, baseline_rss_mb=None,
            details={**timed.details,
                     "memory_pass": f"{memory.error_category}: {memory.error}"})
    return dataclasses.replace(
        timed, peak_rss_mb=memory.peak_rss_mb, baseline_rss_mb=memory.baseline_rss_mb,
        device_peak_mb=memory.device_peak_mb if memory.device_peak_mb is not None
        else timed.device_peak_mb,
        wall_time_s=(timed.wall_time_s or 0.0) + (memory.wall_time_s or 0.0),
        details={**timed.details, "timing_pass_s": timed.wall_time_s,
                 "memory_pass_s": memory.wall_time_s,
                 **{k: v for k, v in memory.details.items() if k in MEMORY_DETAILS}})


@dataclass(frozen=True)
class GeneratedTestOutcome:
    """How a generated test file fared: ``status`` is passed, failed, error, skipped, or
    the job's end (timeout, oom, killed, crash, cancelled); ``summary`` counts the tests;
    ``category`` says whose failure it is (:mod:`hwaccel.kit.failures`) when it did not pass."""

    status: str
    summary: str
    message: str | None
    wall_s: float
    category: str | None = None


def run_generated_test(path: Path, timeout_s: float, pool: JobPool,
                       cpus: list[int] | None = None,
                       env: dict[str, str] | None = None) -> GeneratedTestOutcome:
    """Run a generated test file under pytest in its own process, killed after ``timeout_s``.

    :param env: variables set in that process only (the matrix names the cell's device in
        ``HWACCEL_DEVICE``, for backends whose generated tests can target several devices).
    """
    outcome = pool.run("test", {"path": str(path), "env": env or {}}, timeout_s=timeout_s,
                       cpus=cpus)
    if outcome.status != "ok" or outcome.result is None:
        return GeneratedTestOutcome(outcome.status, "not finished", outcome.message,
                                    outcome.wall_s, job_end_category(outcome.status))
    found = outcome.result
    return GeneratedTestOutcome(found["status"], found["summary"], found["message"],
                                outcome.wall_s, found.get("category"))
