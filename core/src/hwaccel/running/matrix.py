"""The compatibility matrix: models x detected devices, every cell tested and measured.

A cell renders the generated test file for its (model, backend), runs it under pytest in a
job process of its own, then benchmarks the model (one job: timings, then the memory
figure), each job with a time limit and a memory limit (:mod:`hwaccel.running.cells`,
:mod:`hwaccel.running.jobs`). So every cell is also a check that the generated code works.
A crash, a hang, an out-of-memory or a failed conversion is a recorded failure with its
category and message, and the matrix goes on.

Where cells run is the executor's choice (:mod:`hwaccel.running.executors`). With the local one they
run one at a time by default; with several workers, cells of different compute resources
(``HardwareInfo.compute_resource``) run at once, each pinned by :func:`plan` to CPU cores of
its own: an accelerator's cell takes one core, the host-CPU cell the rest, so two timed cells
never share a core. Every result is written by this process as soon as it is known (a killed
run loses at most the cells in flight), the database opened for that write only so that other
hwaccel processes can write and read it between writes; ``resume`` skips cells whose
configuration key is already in the database. :meth:`MatrixRun.stop` (Ctrl-C) kills the jobs
in flight and records nothing for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from hwaccel.errors import UsageError
from hwaccel.hardware.detection import DetectionReport
from hwaccel.history.provenance import fingerprint, library_versions
from hwaccel.history.store import Store, result_row
from hwaccel.plugins import HookError, Plugins
from hwaccel.running import benchmark
from hwaccel.running.cells import HOST_CPU, Cell, CellOutcome, cell_context, device_label
from hwaccel.running.executors import Executor
from hwaccel.types import BenchmarkRequest, BenchmarkSettings

__all__ = ["HOST_CPU", "Cell", "CellOutcome", "MatrixRun", "assign_cores", "config_key",
           "device_label", "example_models", "plan"]


def example_models(plugins: Plugins, pipelines: list[str] | None = None) -> list[str]:
    """The models the pipeline plugins name to represent them (all pipelines, or some), from
    their ``hwaccel_pipeline_info``."""
    from hwaccel.models.classify import pipeline_infos

    loaded = [r.name for r in plugins.loaded() if r.kind == "pipeline"]
    if pipelines:
        unknown = [p for p in pipelines if p not in loaded]
        if unknown:
            raise UsageError(f"unknown pipeline {', '.join(map(repr, unknown))} "
                             f"(loaded pipelines: {', '.join(sorted(loaded)) or 'none'})")
    infos = {info.name: info for info in pipeline_infos(plugins)[0]}
    models: list[str] = []
    for name in pipelines or loaded:
        if name in infos:
            models.extend(infos[name].example_models)
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
    """The driver of a matrix run: records every outcome in the database as soon as it is known.

    Cells decided in advance are recorded at once; the others go to ``executor`` (such as
    :class:`~hwaccel.running.executors.LocalExecutor`), which reports each finished cell back
    to this process, the only one that writes this run's rows (opening the database per
    write).

    :param on_done: called with each :class:`CellOutcome` once it is recorded.
    """

    def __init__(self, cells: list[Cell], *, executor: Executor, db_path: Path, run_id: str,
                 on_done: Callable[[CellOutcome], None] | None = None):
        self.cells = cells
        self.executor = executor
        self.db_path = db_path
        self.run_id = run_id
        self.node = executor.node
        self.on_done = on_done
        self.outcomes: list[CellOutcome] = []
        self._write = threading.Lock()

    def already_measured(self) -> set[str]:
        """The configuration keys of these cells that the database already holds."""
        with Store(self.db_path) as store:
            return store.finished_config_keys([c.key for c in self.cells])

    def execute(self, cells: list[Cell]) -> list[CellOutcome]:
        """Record the decided cells, then run the others; return every outcome.

        Ctrl-C stops the executor (the cells in flight are killed and not recorded) and is
        raised again once it has stopped.
        """
        decided = [CellOutcome(c, benchmark.stamped(c.skip, c.request),
                               cell_context(c, self.node))
                   for c in cells if c.skip is not None]
        if decided:
            with self._write, Store(self.db_path) as store:
                store.insert_rows("hardware_results", [
                    result_row(o.result, o.cell.request.classification, self.run_id,
                               **o.context) for o in decided])
            for outcome in decided:
                self._done(outcome)
        try:
            self.executor.run([c for c in cells if c.skip is None], self.record)
        except KeyboardInterrupt:
            self.stop()
            raise
        finally:
            self.executor.close()
        return self.outcomes

    def stop(self) -> None:
        """Start no more cells and kill the jobs in flight (their cells are not recorded)."""
        self.executor.stop()

    def record(self, outcome: CellOutcome) -> None:
        """Write one finished cell to the database, then report it; thread-safe."""
        with self._write:
            with Store(self.db_path) as store:
                store.insert_result(outcome.result, outcome.cell.request.classification,
                                    self.run_id, **outcome.context)
        self._done(outcome)

    def _done(self, outcome: CellOutcome) -> None:
        with self._write:
            self.outcomes.append(outcome)
        if self.on_done:
            self.on_done(outcome)
