"""How ``hwaccel matrix`` runs its cells: the executor interface, the local executor, lookup.

An executor decides where and when the cells of a planned matrix run; what a cell does is
always :class:`hwaccel.running.cells.CellRunner` (generated test, then benchmark, in job processes
with time and memory limits). The driver process (:class:`hwaccel.running.matrix.MatrixRun`) hands
the executor the cells to run and a ``record`` callback, and alone writes the database: an
executor calls ``record`` once per finished cell, in the driver process, and never writes
the database itself.

Executors are found through the entry-point group ``hwaccel.executors`` (the entry-point
name is the executor's name, its value the :class:`Executor` subclass) and imported only
when chosen: ``hwaccel matrix --executor ray`` imports the Ray executor of the ``hwaccel-ray``
distribution, and nothing else does. The core registers ``local``, the default: cells on
this machine, one at a time, or with several workers on different compute resources and
disjoint CPU cores.
"""

from __future__ import annotations

import importlib.metadata
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from hwaccel.errors import HwaccelError, UsageError

if TYPE_CHECKING:  # kept out of the import, so that listing executors stays light
    from hwaccel.hardware.detection import DetectionReport
    from hwaccel.plugins import Plugins
    from hwaccel.running.cells import Cell, CellOutcome

ENTRY_POINT_GROUP = "hwaccel.executors"
DEFAULT = "local"
Record = Callable[["CellOutcome"], None]


@dataclass(frozen=True)
class ExecutorOptions:
    """What ``hwaccel matrix`` tells an executor.

    :param memory_limit_mb: kill a job above this resident memory; ``None`` lets each
        machine take 80% of the memory it has available.
    :param address: where the executor's cluster is (``--address``); ``None`` for its
        default (the local executor has none).
    :param on_phase: called with (cell, phase) when a cell enters ``test`` or
        ``benchmark``, where the executor can tell.
    """

    plugins: Plugins
    tests_dir: Path
    timeout_s: float
    memory_limit_mb: float | None = None
    address: str | None = None
    on_phase: Callable[[Cell, str], None] | None = None


class Executor(ABC):
    """Runs the cells of a matrix somewhere and reports each outcome to the driver.

    ``runs_here`` says whether cells run on this machine: then the planner pins concurrent
    cells to disjoint cores here (``--workers``) and the memory limit defaults to this
    machine's; an executor that runs cells on other machines does both there. ``node`` is
    the name of the machine the driver runs on.
    """

    name: ClassVar[str] = ""
    runs_here: ClassVar[bool] = False

    def __init__(self, options: ExecutorOptions):
        self.options = options
        self.node = socket.gethostname()

    @abstractmethod
    def detect(self, *, refresh: bool = False) -> DetectionReport:
        """Return the hardware the cells may run on, absent backends with their reasons."""

    def screen(self, cells: list[Cell]) -> list[Cell]:
        """Decide in advance (``skip``) the cells this executor cannot run; return all cells."""
        return cells

    def describe(self, cells: list[Cell]) -> str:
        """One phrase for the start of the run: where and how many of ``cells`` run at once."""
        return "on this machine"

    @abstractmethod
    def run(self, cells: list[Cell], record: Record) -> None:
        """Run ``cells`` (none decided in advance); call ``record`` as each one finishes.

        Returns once every cell is recorded, or, after :meth:`stop`, once the cells in
        flight have been killed (those are not recorded).
        """

    @abstractmethod
    def stop(self) -> None:
        """Start no more cells and kill the ones in flight (the driver calls it on Ctrl-C)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the executor holds (job processes, cluster connections); idempotent."""


class LocalExecutor(Executor):
    """Cells on this machine, through one :class:`JobPool`.

    One worker thread per set of cores the planner pinned (one when nothing is pinned); a
    cell starts only while no running cell uses its compute resource (``lane``) or any of
    its cores, so two timed cells never share a core.
    """

    name = "local"
    runs_here = True

    def __init__(self, options: ExecutorOptions):
        from hwaccel.running.cells import CellRunner
        from hwaccel.running.jobs import JobPool

        super().__init__(options)
        self.pool = JobPool(memory_limit_mb=options.memory_limit_mb)
        self.runner = CellRunner(options.plugins, self.pool, options.tests_dir,
                                 options.timeout_s, self.node, options.on_phase)
        self._lock = threading.Condition()
        self._busy_lanes: set[str] = set()
        self._busy_cores: set[int] = set()
        self._pending: list[Cell] = []
        self._stopping = False
        self._workers: list[threading.Thread] = []

    def detect(self, *, refresh: bool = False) -> DetectionReport:
        """Detect this machine's hardware with the loaded plugins (cached like ``detect``)."""
        from hwaccel.hardware.detection import detect

        return detect(self.options.plugins, refresh=refresh)

    def describe(self, cells: list[Cell]) -> str:
        """Say how many cells run at once."""
        return f"{_concurrency(cells)} at a time"

    def run(self, cells: list[Cell], record: Record) -> None:
        """Run the cells in worker threads; return when all are done or the run stopped."""
        self._pending = list(cells)
        concurrency = _concurrency(cells)
        self._workers = [threading.Thread(target=self._work, args=(record,), daemon=True,
                                          name=f"hwaccel-cell-{i}")
                         for i in range(min(concurrency, len(cells)))]
        for worker in self._workers:
            worker.start()
        for worker in self._workers:
            while worker.is_alive():
                worker.join(0.2)  # in slices, so that Ctrl-C reaches the main thread

    def stop(self) -> None:
        """Start no more cells, kill the jobs in flight and wait for the workers to end."""
        with self._lock:
            self._stopping = True
            self.runner.cancelled = True
            self._lock.notify_all()
        self.pool.close()
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join()

    def close(self) -> None:
        """Stop the job zygote and remove the job folders."""
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

    def _work(self, record: Record) -> None:
        while (cell := self._next()) is not None:
            try:
                outcome = self.runner.run(cell)
            finally:
                self._release(cell)
            if outcome is not None:  # None: stopped in flight, nothing is recorded for it
                record(outcome)


def _concurrency(cells: list[Cell]) -> int:
    """Cells that can run at once: one per set of pinned cores, else one."""
    return len({tuple(c.cores) for c in cells if c.cores and c.skip is None}) or 1


@dataclass(frozen=True)
class ExecutorEntry:
    """An installed executor, as its entry point names it (nothing imported)."""

    name: str
    distribution: str | None
    version: str | None
    target: str


def installed() -> list[ExecutorEntry]:
    """Return the executors of the ``hwaccel.executors`` entry points, sorted by name."""
    found: dict[str, ExecutorEntry] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found.setdefault(ep.name, ExecutorEntry(
            ep.name, dist.metadata["Name"] if dist is not None else None,
            dist.version if dist is not None else None, ep.value))
    return [found[name] for name in sorted(found)]


# Where to get an executor that is not installed, by name.
_DISTRIBUTIONS = {"ray": "hwaccel-ray (pip install 'hwaccel[ray]')"}


def load(name: str) -> type[Executor]:
    """Import the executor class called ``name``, or fail with one clear line."""
    entries = {e.name: e for e in installed()}
    if name not in entries:
        names = ", ".join(entries) or "none"
        if name in _DISTRIBUTIONS:
            raise UsageError(f"executor {name!r} is not installed: install "
                             f"{_DISTRIBUTIONS[name]} (installed executors: {names})")
        raise UsageError(f"unknown executor {name!r} (installed executors: {names})")
    entry = entries[name]
    try:
        cls = next(ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
                   if ep.name == name).load()
    except Exception as exc:  # noqa: BLE001 - a broken executor is one line, not a traceback
        raise HwaccelError(f"executor {name!r} ({entry.distribution}) failed to load: "
                           f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise HwaccelError(f"executor {name!r} ({entry.target}) is not an Executor subclass")
    return cls
