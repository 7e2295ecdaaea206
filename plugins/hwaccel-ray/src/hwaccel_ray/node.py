"""What runs on a node of the cluster, as Ray tasks: the node's own detection, and cells.

Both load the hwaccel plugins of the node (its installed distributions, filtered by the
``HWACCEL_LOAD_PLUGINS``/``HWACCEL_DISABLE_PLUGINS`` its Ray node was started with), so that
what a node offers is what hwaccel finds there. A cell runs through the core's
:class:`~hwaccel.running.cells.CellRunner`: the generated test, then the timing and memory passes,
each in a job process with its time and memory limits, forked by a job zygote that this Ray
worker keeps for the next cells (it dies with the worker). Cells are pinned to the node's
cores the way the local executor pins them (an accelerator's cell gets one core, host-CPU
cells the rest), so the cells that Ray runs at once on one node, one per compute resource,
share no core. The result goes back to the driver as a JSON-safe dict; nothing here writes
a database.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from hwaccel.running.cells import Cell
from hwaccel.running.jobs import JobPool

_POOL: JobPool | None = None


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def detect_here(refresh: bool) -> dict[str, Any]:
    """Detect this node's hardware with its plugins (cached on the node, unless ``refresh``)."""
    from hwaccel.hardware.detection import detect
    from hwaccel.plugins import load

    plugins = load()
    report = detect(plugins, refresh=refresh)
    return {"node_id": _node_id(), "host": socket.gethostname(),
            "hardware": [h.to_dict() for h in report.hardware],
            "errors": [vars(e) for e in report.errors],
            "plugins": {r.name: r.status for r in plugins.records}}


def _pool(memory_limit_mb: float | None) -> JobPool:
    """This worker's job pool, kept across cells; its limit set for the cell at hand."""
    global _POOL
    if _POOL is None:
        _POOL = JobPool()
        atexit.register(_POOL.close)
    if memory_limit_mb is None:
        import psutil

        memory_limit_mb = psutil.virtual_memory().available * 0.8 / 2**20
    _POOL.memory_limit_mb = memory_limit_mb
    return _POOL


def _cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def run_cell(data: dict[str, Any], timeout_s: float,
             memory_limit_mb: float | None) -> dict[str, Any]:
    """Run one cell (``Cell.to_dict()``) on this node and return its outcome as a dict.

    The cell's device record is replaced by this node's own (its name, memory and
    fingerprint); a node that no longer detects the device answers ``unavailable``.
    """
    from hwaccel.hardware.detection import detect
    from hwaccel.kit.failures import failure
    from hwaccel.plugins import load
    from hwaccel.running import benchmark
    from hwaccel.running.cells import CellRunner, cell_context
    from hwaccel.running.matrix import assign_cores

    cell = Cell.from_dict(data)
    wanted = cell.request.hardware
    plugins = load()
    report = detect(plugins)
    here = [h for h in report.hardware if h.available]
    hardware = next((h for h in here if (h.backend, h.device) == (wanted.backend,
                                                                   wanted.device)), None)
    answer: dict[str, Any] = {"node_id": _node_id(), "host": socket.gethostname()}
    if hardware is None:
        result = failure(cell.request, "unavailable",
                         f"{wanted.backend}:{wanted.device} is not detected on node "
                         f"{socket.gethostname()} although it offers its Ray resource "
                         "(restart the node with 'hwaccel-ray node')")
        result = benchmark.stamped(result, cell.request)
        return {**answer, "result": result.to_dict(), "context": cell_context(cell, ""),
                "cell": cell.to_dict()}
    lanes = {h.compute_resource for h in here}
    _, mapping = assign_cores(lanes, len(lanes), _cores())
    cores = mapping.get(hardware.compute_resource)
    settings = cell.request.settings
    if cores and settings.threads is None:
        settings = dataclasses.replace(settings, threads=len(cores))
    request = dataclasses.replace(cell.request, hardware=hardware, settings=settings)
    cell = dataclasses.replace(cell, request=request, lane=hardware.compute_resource,
                               cores=cores)
    tests_dir = Path(tempfile.mkdtemp(prefix="hwaccel-ray-cell-"))
    try:
        runner = CellRunner(plugins, _pool(memory_limit_mb), tests_dir, timeout_s, "")
        outcome = runner.run(cell)
        if outcome is None:  # the pool was closed under it: the worker is going away
            result = benchmark.stamped(failure(request, "cancelled", "the node's job pool "
                                               "closed before the cell finished"), request)
            return {**answer, "result": result.to_dict(), "context": cell_context(cell, ""),
                    "cell": cell.to_dict()}
        test = outcome.test_path
        return {**answer, "result": outcome.result.to_dict(), "context": outcome.context,
                "cell": cell.to_dict(), "test_file": test.name if test else None,
                "test_source": test.read_text("utf-8") if test and test.is_file() else None}
    finally:
        shutil.rmtree(tests_dir, ignore_errors=True)
