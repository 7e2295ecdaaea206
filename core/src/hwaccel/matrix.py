"""The compatibility matrix: models x detected devices, every cell tested and measured.

A cell renders the generated test file for its (model, backend), runs it under pytest in a
job process of its own, then benchmarks the model (timing pass, then memory pass), each job
with a time limit and a memory limit (:mod:`hwaccel.jobs`). So every cell is also a check
that the generated code works. A crash, a hang, an out-of-memory or a failed conversion is a
recorded failure with its category and message, and the matrix goes on.

Cells run one at a time by default. With several workers, cells of different compute
resources (``HardwareInfo.compute_resource``) run at once, each pinned to CPU cores of its
own: an accelerator's cell takes one core, the host-CPU cell the rest, so two timed cells
never share a core. Every result is written as soon as it is known (a killed run loses at
most the cells in flight); ``resume`` skips cells whose configuration key is already in the
database. :meth:`MatrixRun.stop` (Ctrl-C) kills the jobs in flight and records nothing for
them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel import benchmark
from hwaccel.detection import DetectionReport
from hwaccel.errors import HwaccelError, UsageError
from hwaccel.jobs import JobPool
from hwaccel.plugins import HookError, Plugins
from hwaccel.provenance import fingerprint, library_versions
from hwaccel.runner import failure, run_generated_test, run_job
from hwaccel.store import Store, result_row
from hwaccel.types import BenchmarkRequest, BenchmarkResult, BenchmarkSettings

HOST_CPU = "host-cpu"
DEVICE_ENV = "HWACCEL_DEVICE"
"""Set to the cell's device (as detection names it) while the cell's generated test runs."""
# A generated test that ended like this says the job could not run; benchmarking after it
# would only meet the same end again.
_FATAL_TEST_ENDS = ("timeout", "oom", "killed", "crash")


def device_label(backend: str, device: str) -> str:
    """``cuda:0`` or ``openvino:CPU``: the device, prefixed by its backend unless it is."""
    return device if device.split(":")[0] == backend else f"{backend}:{device}"


def example_models(plugins: Plugins, pipelines: list[str] | None = None) -> list[str]:
    """The models the pipeline plugins name to represent them (all pipelines, or some)."""
    loaded = [r.name for r in plugins.loaded() if r.kind == "pipeline"]
    if pipelines:
        unknown = [p for p in pipelines if p not in loaded]
        if unknown:
            raise UsageError(f"unknown pipeline {', '.join(map(repr, unknown))} "
                             f"(loaded pipelines: {', '.join(sorted(loaded)) or 'none'})")
    models: list[str] = []
    for name in pipelines or loaded:
        parts, _ = plugins.call_each("hwaccel_template", backend="", pipeline=name)
        for _, part in parts:
            if part.owner == "pipeline" and part.name == name:
                models.extend(part.example_models)
    return list(dict.fromkeys(models))


def assign_cores(lanes: set[str], workers: int, cores: list[int]
                 ) -> tuple[int, dict[str, list[int] | None]]:
    """Return (cells at once, lane -> CPU cores) so that concurrent cells share no core.

    With one worker or one lane nothing is pinned. Otherwise each accelerator lane gets one
    core from the end of ``cores`` (lanes share a core when there are fewer cores than
    lanes, and then never run at once) and the host-CPU lane keeps the rest.
    """
    host = HOST_CPU in lanes
    accelerators = sorted(lanes - {HOST_CPU})
    spare = min(len(accelerators), len(cores) - int(host), workers - int(host))
    if workers <= 1 or len(lanes) <= 1 or spare < 1:
        return 1, dict.fromkeys(lanes)
    own = cores[len(cores) - spare:]
    mapping: dict[str, list[int] | None] = {
        lane: [own[i % spare]] for i, lane in enumerate(accelerators)}
    if host:
        mapping[HOST_CPU] = cores[:len(cores) - spare]
    return spare + int(host), mapping


def config_key(request: BenchmarkRequest, versions: dict[str, str]) -> str:
    """A digest of everything that makes two cells the same measurement."""
    hardware = request.hardware
    data = {"model": request.model, "backend": hardware.backend, "device": hardware.device,
            "hardware": fingerprint(hardware) if hardware.available else None,
            "settings": request.settings.to_dict(), "versions": versions,
            "plugins": [hardware.distribution_version,
                        request.classification.distribution_version]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Cell:
    """One (model, device) of the matrix; ``skip`` holds a failure decided in advance."""

    request: BenchmarkRequest
    skip: BenchmarkResult | None
    lane: str
    cores: list[int] | None
    key: str


@dataclass
class CellOutcome:
    """A finished cell: the benchmark result and what the generated test said."""

    cell: Cell
    result: BenchmarkResult
    context: dict[str, Any] = field(default_factory=dict)


def plan(models: list[str], plugins: Plugins, report: DetectionReport,
         settings: BenchmarkSettings, *, backends: list[str] | None = None,
         workers: int = 1) -> tuple[list[Cell], int, list[HookError]]:
    """Return (cells, cells at once, hook errors) for models x every device of the backends.

    Backends default to every backend detection reported, absent ones included, and each
    backend's unavailable devices are cells too, so that the matrix says why a column is
    empty. Bad model ids or backend names raise
    :class:`UsageError` before anything runs.
    """
    chosen = backends or sorted({h.backend for h in report.hardware})
    jobs, errors = benchmark.plan(models, chosen, plugins, report, settings, every_device=True,
                                  with_absent=True)
    lanes = {j.request.hardware.compute_resource for j in jobs if j.skip is None}
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else list(range(os.cpu_count() or 1))
    concurrency, mapping = assign_cores(lanes, workers, cores)
    versions = library_versions()
    cells = []
    for job in jobs:
        request = job.request
        lane = request.hardware.compute_resource
        pinned = mapping.get(lane) if job.skip is None else None
        if pinned and request.settings.threads is None:
            request = dataclasses.replace(request, settings=dataclasses.replace(
                request.settings, threads=len(pinned)))
        cells.append(Cell(request, job.skip, lane, pinned, config_key(request, versions)))
    return cells, concurrency, errors


class MatrixRun:
    """Runs planned cells and records each outcome in the database as soon as it is known.

    :param on_phase: called with (cell, phase) when a cell enters ``test`` or ``benchmark``.
    :param on_done: called with each :class:`CellOutcome` once it is recorded.
    """

    def __init__(self, cells: list[Cell], *, plugins: Plugins, db_path: Path, run_id: str,
                 tests_dir: Path, timeout_s: float, concurrency: int = 1,
                 memory_limit_mb: float | None = None,
                 on_phase: Callable[[Cell, str], None] | None = None,
                 on_done: Callable[[CellOutcome], None] | None = None):
        self.cells = cells
        self.plugins = plugins
        self.db_path = db_path
        self.run_id = run_id
        self.tests_dir = tests_dir
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.node = socket.gethostname()
        self.on_phase = on_phase
        self.on_done = on_done
        self.pool = JobPool(memory_limit_mb=memory_limit_mb)
        self.outcomes: list[CellOutcome] = []
        self._lock = threading.Condition()
        self._write = threading.Lock()
        self._busy_lanes: set[str] = set()
        self._busy_cores: set[int] = set()
        self._pending: list[Cell] = []
        self._stopping = False
        self._names: set[str] = set()

    def already_measured(self) -> set[str]:
        """The configuration keys of these cells that the database already holds."""
        with Store(self.db_path, wait_s=30) as store:
            return store.finished_config_keys([c.key for c in self.cells])

    def execute(self, cells: list[Cell]) -> list[CellOutcome]:
        """Record the decided cells, then run the others; return every outcome."""
        decided = [CellOutcome(c, benchmark.stamped(c.skip, c.request), self._context(c))
                   for c in cells if c.skip is not None]
        if decided:
            with self._write, Store(self.db_path, wait_s=30) as store:
                store.insert_rows("hardware_results", [
                    result_row(o.result, o.cell.request.classification, self.run_id,
                               **o.context) for o in decided])
            for outcome in decided:
                self._done(outcome)
        self._pending = [c for c in cells if c.skip is None]
        workers = [threading.Thread(target=self._worker, name=f"hwaccel-cell-{i}", daemon=True)
                   for i in range(min(self.concurrency, len(self._pending)))]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)
        except KeyboardInterrupt:
            self.stop()
            for worker in workers:
                worker.join()
            raise
        finally:
            self.pool.close()
        return self.outcomes

    def stop(self) -> None:
        """Start no more cells and kill the jobs in flight (their cells are not recorded)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self.pool.close()

    def _next(self) -> Cell | None:
        with self._lock:
            while not self._stopping and self._pending:
                for cell in self._pending:
                    cores = set(cell.cores or ())
                    if cell.lane not in self._busy_lanes and not cores & self._busy_cores:
                        self._pending.remove(cell)
                        self._busy_lanes.add(cell.lane)
                        self._busy_cores |= cores
                        return cell
                self._lock.wait()
            return None

    def _release(self, cell: Cell) -> None:
        with self._lock:
            self._busy_lanes.discard(cell.lane)
            self._busy_cores -= set(cell.cores or ())
            self._lock.notify_all()

    def _worker(self) -> None:
        while (cell := self._next()) is not None:
            try:
                outcome = self._run(cell)
            finally:
                self._release(cell)
            if outcome is None:  # stopped in flight: nothing is recorded for it
                continue
            with self._write, Store(self.db_path, wait_s=30) as store:
                store.insert_result(outcome.result, cell.request.classification, self.run_id,
                                    **outcome.context)
            self._done(outcome)

    def _done(self, outcome: CellOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        if self.on_done:
            self.on_done(outcome)

    def _context(self, cell: Cell, **test: Any) -> dict[str, Any]:
        return {"source": "matrix", "config_key": cell.key, "node": self.node,
                "cpu_affinity": ",".join(map(str, cell.cores)) if cell.cores else None,
                "test_status": "not-run", **test}

    def _phase(self, cell: Cell, phase: str) -> None:
        if self.on_phase:
            self.on_phase(cell, phase)

    def _run(self, cell: Cell) -> CellOutcome | None:
        """Test, then benchmark one cell; ``None`` when the run was stopped meanwhile.

        A job that cannot even start (the zygote failed) is this cell's failure, and the
        matrix goes on with the next cell.
        """
        try:
            return self._test_and_measure(cell)
        except HwaccelError as exc:
            if self._stopping:
                return None
            result = benchmark.stamped(failure(cell.request, "crash", str(exc)), cell.request)
            return CellOutcome(cell, result, self._context(cell))

    def _test_and_measure(self, cell: Cell) -> CellOutcome | None:
        from hwaccel.generate import file_name, render, write_test

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
        except HwaccelError as exc:
            result = benchmark.stamped(failure(request, "template", str(exc)), request)
            return CellOutcome(cell, result, self._context(cell))
        self._phase(cell, "test")
        test = run_generated_test(path, self.timeout_s, self.pool, cell.cores,
                                  env={DEVICE_ENV: request.hardware.device})
        if test.status == "cancelled":
            return None
        context = self._context(cell, test_status=test.status, test_summary=test.summary,
                                test_time_s=test.wall_s)
        if test.status in _FATAL_TEST_ENDS:
            result = failure(request, test.status, f"generated test: {test.message}")
            return CellOutcome(cell, benchmark.stamped(result, request), context)
        self._phase(cell, "benchmark")
        result = run_job(request, self.timeout_s, self.pool, cell.cores)
        if result.error_category == "cancelled":
            return None
        if result.success and test.status != "passed":
            result = dataclasses.replace(
                result, success=False, error_category=f"test-{test.status}",
                error=f"generated test {test.status} ({test.summary}): {test.message}")
        return CellOutcome(cell, benchmark.stamped(result, request), context)
