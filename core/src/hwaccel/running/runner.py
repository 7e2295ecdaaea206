"""Benchmark jobs and generated-test jobs, each in its own process with a time limit.

A benchmark is one fresh process (:mod:`hwaccel.running.jobs`) that loads the model once:
it times the calls, records the kernel high-water mark of this model on this device
(``VmHWM``, before any reference copy is loaded), and then compares the outputs with the CPU
reference where the backend makes one (:func:`hwaccel.kit.measure.benchmark_workload`). A
crash, a hang or an out-of-memory kill becomes a failed :class:`BenchmarkResult` with its
category, never a lost run. Only the calling process writes the database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hwaccel.kit.failures import failure, job_end_category
from hwaccel.running.jobs import JobOutcome, JobPool
from hwaccel.types import BenchmarkRequest, BenchmarkResult


def _result_of(request: BenchmarkRequest, outcome: JobOutcome) -> BenchmarkResult:
    if outcome.status == "ok" and outcome.result is not None:
        return dataclasses.replace(BenchmarkResult.from_dict(outcome.result),
                                   wall_time_s=outcome.wall_s)
    return dataclasses.replace(
        failure(request, job_end_category(outcome.status), outcome.message),
        wall_time_s=outcome.wall_s)


def run_job(request: BenchmarkRequest, timeout_s: float, pool: JobPool | None = None,
            cpus: list[int] | None = None) -> BenchmarkResult:
    """Benchmark ``request`` in a job process killed after ``timeout_s`` seconds. ``pool``
    defaults to a pool of its own for this call."""
    if pool is None:
        with JobPool() as own:
            return run_job(request, timeout_s, own, cpus)
    return _result_of(request, pool.run("benchmark", request.to_dict(), timeout_s=timeout_s,
                                        cpus=cpus))


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
