"""One cell of the matrix, run where it is called: its generated test, then its benchmark.

A cell is one (model, device). :class:`CellRunner` renders the generated test file for its
(model, backend), runs it under pytest in a job process, then benchmarks the model (one
job: timings, then the memory figure), each job with the time and memory limits of its
:class:`~hwaccel.running.jobs.JobPool`. Every executor (:mod:`hwaccel.running.executors`) runs
cells through
it: the local one on this machine, a distributed one on whichever node it placed the cell.
The runner never writes the database; it returns a :class:`CellOutcome`, and the driver
process records it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError, MissingSlotError
from hwaccel.kit.failures import HARNESS, failure, job_end_category
from hwaccel.plugins import Plugins
from hwaccel.running import benchmark
from hwaccel.running.jobs import JobPool
from hwaccel.running.runner import run_generated_test, run_job
from hwaccel.types import BenchmarkRequest, BenchmarkResult

HOST_CPU = "host-cpu"
DEVICE_ENV = "HWACCEL_DEVICE"
"""Set to the cell's device (as detection names it) while the cell's generated test runs."""
# A generated test that ended like this says the job could not run; benchmarking after it
# would only meet the same end again.
_FATAL_TEST_ENDS = ("timeout", "oom", "killed", "crash")


def device_label(backend: str, device: str) -> str:
    """``cuda:0`` or ``openvino:CPU``: the device, prefixed by its backend unless it is."""
    return device if device.split(":")[0] == backend else f"{backend}:{device}"


@dataclass(frozen=True)
class Cell:
    """One (model, device) of the matrix; ``skip`` holds a failure decided in advance.

    ``lane`` is the device's compute resource; ``cores`` the CPU cores its jobs are pinned
    to (``None``: not pinned); ``key`` the configuration key that ``--resume`` compares.
    """

    request: BenchmarkRequest
    skip: BenchmarkResult | None
    lane: str
    cores: list[int] | None
    key: str

    def to_dict(self) -> dict[str, Any]:
        """Return the cell as a JSON-safe dict, to send it to another process or machine."""
        return {"request": self.request.to_dict(),
                "skip": self.skip.to_dict() if self.skip else None,
                "lane": self.lane, "cores": self.cores, "key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        """Rebuild a cell from :meth:`to_dict` output."""
        skip = data.get("skip")
        return cls(BenchmarkRequest.from_dict(data["request"]),
                   BenchmarkResult.from_dict(skip) if skip else None,
                   data["lane"], data.get("cores"), data["key"])


@dataclass
class CellOutcome:
    """A finished cell: the benchmark result, what the generated test said (``context``,
    the row's context columns) and where the generated test file was written."""

    cell: Cell
    result: BenchmarkResult
    context: dict[str, Any] = field(default_factory=dict)
    test_path: Path | None = None


def cell_context(cell: Cell, node: str, **test: Any) -> dict[str, Any]:
    """The context columns of a matrix row for ``cell`` run on ``node`` (see ``result_row``)."""
    return {"source": "matrix", "config_key": cell.key, "node": node,
            "cpu_affinity": ",".join(map(str, cell.cores)) if cell.cores else None,
            "test_status": "not-run", **test}


class CellRunner:
    """Tests and measures cells in the jobs of ``pool``; safe to call from several threads.

    :param node: the name recorded as the node each cell ran on.
    :param on_phase: called with (cell, phase) when a cell enters ``test`` or ``benchmark``.
    """

    def __init__(self, plugins: Plugins, pool: JobPool, tests_dir: Path, timeout_s: float,
                 node: str, on_phase: Callable[[Cell, str], None] | None = None):
        self.plugins = plugins
        self.pool = pool
        self.tests_dir = tests_dir
        self.timeout_s = timeout_s
        self.node = node
        self.on_phase = on_phase
        self.cancelled = False
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def run(self, cell: Cell) -> CellOutcome | None:
        """Test, then benchmark one cell; ``None`` when it was cancelled meanwhile.

        A job that cannot even start (the zygote failed) is this cell's failure, and the
        caller goes on with the next cell.
        """
        try:
            return self._test_and_measure(cell)
        except HwaccelError as exc:
            if self.cancelled:
                return None
            result = benchmark.stamped(failure(cell.request, "crash", str(exc)), cell.request)
            return CellOutcome(cell, result, cell_context(cell, self.node))

    def _phase(self, cell: Cell, phase: str) -> None:
        if self.on_phase:
            self.on_phase(cell, phase)

    def _test_and_measure(self, cell: Cell) -> CellOutcome | None:
        from hwaccel.generating.generate import file_name, render, write_test

        request = cell.request
        try:
            source = render(request.model, request.classification, request.hardware.backend,
                            self.plugins)
            with self._lock:
                name = file_name(request.model, device_label(request.hardware.backend,
                                                             request.hardware.device),
                                 self._names)
                self._names.add(name)
            path = write_test(source, self.tests_dir, name)
        except MissingSlotError as exc:  # the backend cannot serve this pipeline's test
            result = benchmark.stamped(failure(request, "unsupported", str(exc)), request)
            return CellOutcome(cell, result, cell_context(cell, self.node))
        except HwaccelError as exc:
            result = benchmark.stamped(failure(request, HARNESS, str(exc)), request)
            return CellOutcome(cell, result, cell_context(cell, self.node))
        self._phase(cell, "test")
        test = run_generated_test(path, self.timeout_s, self.pool, cell.cores,
                                  env={DEVICE_ENV: request.hardware.device})
        if test.status == "cancelled":
            return None
        context = cell_context(cell, self.node, test_status=test.status,
                               test_summary=test.summary, test_time_s=test.wall_s)
        if test.status in _FATAL_TEST_ENDS:
            result = failure(request, test.category or job_end_category(test.status),
                             f"generated test: {test.message}")
            return CellOutcome(cell, benchmark.stamped(result, request), context, path)
        self._phase(cell, "benchmark")
        result = run_job(request, self.timeout_s, self.pool, cell.cores)
        if result.error_category == "cancelled":
            return None
        if result.success and test.status != "passed":
            result = dataclasses.replace(
                result, success=False, error_category=test.category or HARNESS,
                error=f"generated test {test.status} ({test.summary}): {test.message}")
        return CellOutcome(cell, benchmark.stamped(result, request), context, path)
