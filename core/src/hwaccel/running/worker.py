"""What a job process runs: a benchmark through the backend's hook, or a generated test.

Both run in a child of :mod:`hwaccel.running.zygote`. A benchmark result is stamped by the
core with the kernel's memory high-water mark of this process (unless the measurement
recorded it before loading its reference copy, as
:func:`hwaccel.kit.measure.benchmark_workload` does), the load average at the start, library
versions and the hardware fingerprint. A generated test runs under pytest in this process;
its outcome is counted per test and the first failure kept as one line.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pluggy

from hwaccel.history.provenance import fingerprint, library_versions
from hwaccel.kit.measure import process_memory_mb
from hwaccel.types import BenchmarkRequest, BenchmarkResult

_PYTEST_HOOK = pluggy.HookimplMarker("pytest")  # pytest's own marker, without importing it


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Benchmark ``request`` in this process and stamp the result."""
    from hwaccel.kit.failures import HARNESS, failure
    from hwaccel.plugins import load

    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    plugins = load()
    result, errors = plugins.call_first("hwaccel_benchmark", request=request)
    if result is None:
        owner = [e for e in errors if e.plugin == request.hardware.plugin] or errors
        if owner:
            result = failure(request, owner[0].category or HARNESS, owner[0].message)
        else:
            result = failure(request, "unsupported",
                             f"no loaded plugin benchmarks backend {request.hardware.backend!r}")
    peak = result.peak_rss_mb if result.peak_rss_mb is not None else process_memory_mb("VmHWM")
    return dataclasses.replace(
        result, peak_rss_mb=peak, load_avg=load_avg,
        versions={**library_versions((result.distribution,
                                      request.classification.distribution)),
                  **result.versions},
        hardware_fingerprint=fingerprint(request.hardware))


def benchmark_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Job ``benchmark``: ``payload`` is a :class:`BenchmarkRequest` dict."""
    return run(BenchmarkRequest.from_dict(payload)).to_dict()


class _Outcomes:
    """A pytest plugin that counts test outcomes and keeps the first failure and whose it is.

    A failure's category is the one its exception carries (the generated test attributes
    each step, :mod:`hwaccel.kit.failures`); an assertion of a pipeline's own check that carries
    none is the device's (``backend``), any other exception is attributed by where it was
    raised.
    """

    def __init__(self) -> None:
        self.counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
        self.first_failure: str | None = None
        self.first_category: str | None = None
        self.skip_reasons: list[str] = []

    @_PYTEST_HOOK(wrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        """Keep the category of the first failing call, set-up or tear-down."""
        report = yield
        if call.excinfo is not None and self.first_category is None and report.failed:
            self.first_category = _category_of(call.excinfo.value)
        return report

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Count one phase report: a call's outcome, or a set-up/tear-down problem."""
        if report.skipped:
            self.counts["skipped"] += 1
            if isinstance(report.longrepr, tuple):
                self.skip_reasons.append(str(report.longrepr[2]))
        elif report.failed:
            self.counts["failed" if report.when == "call" else "error"] += 1
            if self.first_failure is None:
                self.first_failure = f"{report.nodeid.split('::')[-1]}: {_crash_line(report)}"
        elif report.when == "call":
            self.counts["passed"] += 1

    def pytest_collectreport(self, report: Any) -> None:
        """A module that fails to import is an error too."""
        if report.failed:
            self.counts["error"] += 1
            if self.first_failure is None:
                self.first_failure = f"collection: {_crash_line(report)}"


def _category_of(exc: BaseException) -> str:
    from hwaccel.kit.failures import BACKEND, category_of

    return BACKEND if isinstance(exc, AssertionError) else category_of(exc)


def _crash_line(report: Any) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "failed")[:500]


def test_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Job ``test``: run the generated test file ``payload["path"]`` under pytest, with the
    variables of ``payload["env"]`` set in this process."""
    import pytest

    os.environ.update(payload.get("env", {}))

    outcomes = _Outcomes()
    path = payload["path"]
    exit_code = pytest.main([path, "-q", "-p", "no:cacheprovider", "-c", os.devnull,
                             "--rootdir", os.path.dirname(path)], plugins=[outcomes])
    counts = outcomes.counts
    summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    if counts["failed"] or counts["error"] or int(exit_code) not in (0, 5):
        status = "failed" if counts["failed"] else "error"
    elif counts["passed"]:
        status = "passed"
    else:
        status = "skipped"
    message = outcomes.first_failure
    if status == "skipped":
        message = "; ".join(dict.fromkeys(outcomes.skip_reasons)) or "no test ran"
    category = outcomes.first_category if status in ("failed", "error") else None
    if status in ("failed", "error") and category is None:
        from hwaccel.kit.failures import HARNESS

        category = HARNESS  # a module that did not import, or pytest's own error
    return {"status": status, "summary": summary or "no tests", "message": message,
            "category": category, "exit_code": int(exit_code), **counts}
