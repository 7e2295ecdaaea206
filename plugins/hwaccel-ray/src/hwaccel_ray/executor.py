"""``hwaccel matrix --executor ray``: the matrix's cells as Ray tasks, placed by hardware.

With ``--address`` the driver joins that cluster; without it, it starts a one-node cluster of
this machine whose resources come from this machine's detection. A cluster on this machine
(no address, or a loopback one) stays on loopback: the driver sets
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before importing ray, which makes Ray bind
127.0.0.1 (it otherwise listens on every interface, whatever ``--node-ip-address`` says).
Then:

1. **Detection on every node.** A Ray task pinned to each alive node runs hwaccel's detection
   there, with that node's plugins. The devices a node detects *and* offers as Ray resources
   (:mod:`hwaccel_ray.resources`) are what the matrix plans with; a backend that no node
   offers gets one record saying why, node by node.
2. **Screening.** A cell whose backend or device no node offers is decided at once as
   ``no-node`` ("no node offers backend cuda: ..."), never left pending in Ray's queue.
3. **Cells as tasks.** Every other cell is a Ray task asking for its device's resource (and
   the host-CPU unit for devices that compute on the host's cores), so Ray runs it only on a
   node with that device, one timed cell per device and per node's cores at a time. The task
   (:func:`hwaccel_ray.node.run_cell`) returns the outcome; the driver records it (and only
   the driver writes the database), with the node the cell ran on.
4. **Lost nodes.** A cell whose node dies (or whose Ray worker dies) under it is tried again
   on another node offering its device, at most :attr:`RayExecutor.retries` times; when no
   alive node offers it any more, or the retries are spent, it is recorded as ``node-lost``
   with the reason. Queued cells whose device left the cluster with a node are cancelled and
   recorded the same way. Every cell already recorded stays recorded.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.generating.generate import write_test
from hwaccel.hardware.detection import DetectionReport
from hwaccel.kit.failures import CRASH, category_of, failure
from hwaccel.plugins import HookError
from hwaccel.running.cells import Cell, CellOutcome, device_label
from hwaccel.running.executors import Executor, ExecutorOptions, Record
from hwaccel.types import BenchmarkResult, HardwareInfo
from hwaccel_ray import node as node_tasks
from hwaccel_ray.resources import PREFIX, cell_demand, gpu_count, node_resources, offers

_NODE_ID = re.compile(r"node ID: ([0-9a-f]{16,})")
_DETECT_TIMEOUT_S = 300.0
_CHECK_EVERY_S = 1.0
# A cell whose device no alive node offers any more is cancelled after this grace time, so
# that a cell that was running on the lost node first gets its own error (and its retry).
_STRANDED_GRACE_S = 5.0


def _one_line(exc: BaseException) -> str:
    """The exception's type and the first sentence of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {first}"[:400]


def _on_loopback(address: str | None) -> bool:
    """Whether the cluster is this machine's own: no address, or a loopback one."""
    if not address:
        return True
    host = address.rpartition(":")[0].strip("[]")
    return host in {"127.0.0.1", "localhost", "::1"}


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at a ``host:port`` address (Ray would retry for
    minutes); other forms (``auto``, ``ray://...``) are left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or "/" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise HwaccelError(f"cannot connect to the Ray cluster at {address}: nothing answers "
                           f"there ({exc.strerror or exc}); start its head with "
                           "'hwaccel-ray node --head'") from None


@dataclass
class _Node:
    """An alive node of the cluster as the driver sees it."""

    node_id: str
    name: str
    resources: dict[str, float]


@dataclass
class _Flight:
    """A cell's task in flight: which attempt it is, and what happened to earlier ones."""

    cell: Cell
    attempt: int
    lost: list[str] = field(default_factory=list)
    lost_on: str | None = None
    cancelled_because: str | None = None
    stranded_since: float | None = None


class RayExecutor(Executor):
    """Runs the matrix's cells as Ray tasks on the nodes that offer their devices."""

    name = "ray"
    runs_here = False
    retries = 2  # a cell whose node is lost runs again on another node at most this often

    def __init__(self, options: ExecutorOptions):
        super().__init__(options)
        if _on_loopback(options.address):  # before ray is imported: Ray then binds loopback
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if not options.address:  # a cluster of hwaccel's own does not report usage
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError as exc:
            raise HwaccelError(f"the ray executor needs the ray library ({exc}); install "
                               "hwaccel-ray with its dependencies") from None
        self.ray = ray
        self.address = options.address
        self._connect()
        self.nodes: dict[str, _Node] = {}
        self._names: dict[str, str] = {}  # every node seen, alive or not: id -> name
        self._dead: set[str] = set()  # nodes a task's error reported dead
        self._refresh_nodes()
        self._detect_task = ray.remote(node_tasks.detect_here)
        self._cell_task = ray.remote(node_tasks.run_cell)
        self._flights: dict[Any, _Flight] = {}
        self._stopping = False

    # -- connecting --------------------------------------------------------------------------

    def _connect(self) -> None:
        ray = self.ray
        quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                 "configure_logging": True}
        if self.address:
            _check_reachable(self.address)
        try:
            if self.address:
                ray.init(address=self.address, **quiet)
                return
            from hwaccel.hardware.detection import detect

            hardware = detect(self.options.plugins).hardware
            ray.init(_node_ip_address="127.0.0.1", _node_name=self.node, include_dashboard=False,
                     resources=node_resources(hardware), num_gpus=gpu_count(hardware),
                     **quiet)
        except Exception as exc:  # noqa: BLE001 - ray raises many kinds; one line for all
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray node"
            raise HwaccelError(f"cannot connect to {where}: {_one_line(exc)}") from None

    def close(self) -> None:
        """Disconnect from the cluster (a local one-node cluster stops with it)."""
        if self.ray.is_initialized():
            self.ray.shutdown()

    def _refresh_nodes(self) -> None:
        alive = [n for n in self.ray.nodes() if n.get("Alive") and n["NodeID"] not in self._dead]
        names = [n.get("NodeName") or n.get("NodeManagerAddress") or "?" for n in alive]
        self.nodes = {}
        for info, name in zip(alive, names, strict=True):
            node_id = info["NodeID"]
            unique = name if names.count(name) == 1 else f"{name}/{node_id[:8]}"
            self.nodes[node_id] = _Node(node_id, unique, dict(info.get("Resources", {})))
            self._names[node_id] = unique

    def _offered(self, demand: dict[str, float]) -> list[_Node]:
        return [n for n in self.nodes.values() if offers(n.resources, demand)]

    # -- planning ----------------------------------------------------------------------------

    def detect(self, *, refresh: bool = False) -> DetectionReport:
        """Detect on every alive node; return what the nodes offer, merged.

        A device offered by several nodes appears once, with the names of the nodes in
        ``details["nodes"]``. A backend that no node offers gets one unavailable record whose
        reason lists, node by node, why not.
        """
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        refs = {self._detect_task.options(
            num_cpus=0, max_retries=0, name="hwaccel detect",
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
        ).remote(refresh): node for node_id, node in self.nodes.items()}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=_DETECT_TIMEOUT_S)
        errors: list[HookError] = []
        answers: list[tuple[_Node, dict[str, Any]]] = []
        for ref in ready:
            try:
                answers.append((refs[ref], ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - a node that cannot detect offers nothing
                errors.append(HookError("ray", "hwaccel_detect",
                                        f"node {refs[ref].name}: {_one_line(exc)}"))
        for ref in late:
            ray.cancel(ref, force=True)
            errors.append(HookError("ray", "hwaccel_detect", f"node {refs[ref].name} did not "
                                    f"answer within {_DETECT_TIMEOUT_S:g} s; it offers nothing"))
        offered: dict[tuple[str, str], HardwareInfo] = {}
        why_not: dict[str, dict[str, str]] = {}
        for node, answer in sorted(answers, key=lambda a: a[0].name):
            errors += [HookError(e["plugin"], e["hook"], f"on node {node.name}: {e['message']}")
                       for e in answer["errors"]]
            for info in map(HardwareInfo.from_dict, answer["hardware"]):
                reasons = why_not.setdefault(info.backend, {})
                if not info.available:
                    reasons.setdefault(node.name, info.reason or "absent")
                elif not offers(node.resources, cell_demand(info)):
                    reasons[node.name] = (f"{device_label(info.backend, info.device)} is "
                                          "detected but not offered as a Ray resource (start "
                                          "the node with 'hwaccel-ray node')")
                else:
                    key = (info.backend, info.device)
                    first = offered.setdefault(key, info)
                    nodes = [*first.details.get("nodes", []), node.name]
                    offered[key] = replace(first, details={**first.details, "nodes": nodes})
        hardware = list(offered.values())
        for backend, reasons in sorted(why_not.items()):
            if any(h.backend == backend for h in hardware):
                continue
            for node, answer in answers:
                if backend not in {h["backend"] for h in answer["hardware"]}:
                    reasons.setdefault(node.name, "no plugin for it loaded there")
            listed = "; ".join(f"{n}: {r}" for n, r in sorted(reasons.items()))
            hardware.append(HardwareInfo(backend=backend, device=backend, name=backend,
                                         available=False, reason=listed))
        return DetectionReport(hardware=hardware, errors=errors,
                               timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def screen(self, cells: list[Cell]) -> list[Cell]:
        """Decide at once, as ``no-node``, the cells that no alive node can run."""
        screened = []
        for cell in cells:
            hardware = cell.request.hardware
            if cell.skip is not None and cell.skip.error_category == "unavailable":
                cell = replace(cell, skip=failure(
                    cell.request, "no-node",
                    f"no node offers backend {hardware.backend}: {hardware.reason}"))
            elif cell.skip is None and not self._offered(cell_demand(hardware)):
                cell = replace(cell, skip=self._no_node(cell, "its nodes left the cluster"))
            screened.append(cell)
        return screened

    def describe(self, cells: list[Cell]) -> str:
        """Name the cluster and its nodes."""
        where = self.address or "a one-node cluster of this machine (loopback)"
        nodes = sorted(n.name for n in self.nodes.values()
                       if any(k.startswith(PREFIX) for k in n.resources))
        return (f"on Ray at {where}: {len(nodes)} node(s) with hwaccel devices "
                f"({', '.join(nodes) or 'none'}), one timed cell per device and per node's "
                "cores at a time")

    # -- running -----------------------------------------------------------------------------

    def run(self, cells: list[Cell], record: Record) -> None:
        """Submit every cell, then record each outcome as it arrives; retry lost cells."""
        self._stopping = False
        for cell in cells:
            self._submit(_Flight(cell, 0), record)
        next_check = time.monotonic() + _CHECK_EVERY_S
        while self._flights and not self._stopping:
            ready, _ = self.ray.wait(list(self._flights), num_returns=1, timeout=0.5)
            for ref in ready:
                self._collect(ref, record)
            if time.monotonic() >= next_check:
                self._cancel_stranded()
                next_check = time.monotonic() + _CHECK_EVERY_S

    def stop(self) -> None:
        """Cancel every cell in flight (their Ray workers, and so their jobs, are killed)."""
        self._stopping = True
        refs = list(self._flights)
        for ref in refs:
            self.ray.cancel(ref, force=True)
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=30)
        self._flights.clear()

    def _submit(self, flight: _Flight, record: Record) -> None:
        hardware = flight.cell.request.hardware
        demand = cell_demand(hardware)
        if not self._offered(demand):
            record(self._lost(flight, "no other alive node offers it") if flight.lost
                   else self._outcome(flight.cell, self._no_node(flight.cell,
                                                                 "its nodes left the cluster")))
            return
        ref = self._cell_task.options(
            num_cpus=0, max_retries=0, resources=demand,
            name=f"hwaccel cell {flight.cell.request.model} on "
                 f"{device_label(hardware.backend, hardware.device)}",
        ).remote(flight.cell.to_dict(), self.options.timeout_s, self.options.memory_limit_mb)
        self._flights[ref] = flight

    def _collect(self, ref: Any, record: Record) -> None:
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        flight = self._flights.pop(ref)
        try:
            answer = self.ray.get(ref)
        except TaskCancelledError:
            if flight.cancelled_because:
                record(self._lost(flight, flight.cancelled_because))
            return
        except RayTaskError as exc:  # the task itself raised on its node
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            result = failure(flight.cell.request, category_of(cause),
                             f"the cell's task failed on its node: {_one_line(exc.cause)}")
            record(self._outcome(flight.cell, result))
            return
        except RayError as exc:  # the node or the worker died under the cell
            match = _NODE_ID.search(str(exc))
            name = self._names.get(match.group(1)) if match else None
            if match:
                self._dead.add(match.group(1))
            where = f"node {name}" if name else "its node"
            flight.lost.append(f"{where} was lost while running it ({_one_line(exc)})")
            flight.lost_on = name
            self._refresh_nodes()
            if flight.attempt < self.retries:
                self._submit(_Flight(flight.cell, flight.attempt + 1, flight.lost,
                                     flight.lost_on), record)
            else:
                record(self._lost(flight, f"gave up after {flight.attempt + 1} attempts"))
            return
        record(self._answered(flight, answer))

    def _cancel_stranded(self) -> None:
        """Cancel the cells whose device no alive node has offered for a grace time (queued
        cells would otherwise wait in Ray's queue forever)."""
        self._refresh_nodes()
        now = time.monotonic()
        for ref, flight in list(self._flights.items()):
            if flight.cancelled_because or self._offered(cell_demand(flight.cell.request.hardware)):
                flight.stranded_since = None
                continue
            flight.stranded_since = flight.stranded_since or now
            if now - flight.stranded_since >= _STRANDED_GRACE_S:
                flight.cancelled_because = "every node that offered it left the cluster"
                self.ray.cancel(ref, force=True)

    # -- outcomes ----------------------------------------------------------------------------

    def _node_name(self, node_id: str) -> str:
        return self._names.get(node_id, node_id[:12])

    def _answered(self, flight: _Flight, answer: dict[str, Any]) -> CellOutcome:
        cell = Cell.from_dict(answer["cell"])
        result = BenchmarkResult.from_dict(answer["result"])
        details = {**result.details, "ray_node_id": answer["node_id"],
                   "ray_attempts": flight.attempt + 1}
        if flight.lost:
            details["ray_lost"] = flight.lost
        context = {**answer["context"], "node": self._node_name(answer["node_id"]),
                   "config_key": flight.cell.key}
        test_path = None
        if answer.get("test_file") and answer.get("test_source") is not None:
            test_path = write_test(answer["test_source"], self.options.tests_dir,
                                   answer["test_file"])
        return CellOutcome(cell, replace(result, details=details), context, test_path)

    def _outcome(self, cell: Cell, result: BenchmarkResult, node: str | None = None
                 ) -> CellOutcome:
        from hwaccel.running import benchmark
        from hwaccel.running.cells import cell_context

        return CellOutcome(cell, benchmark.stamped(result, cell.request),
                           cell_context(cell, node or self.node))

    def _no_node(self, cell: Cell, why: str) -> BenchmarkResult:
        hardware = cell.request.hardware
        return failure(cell.request, "no-node", f"no node offers "
                       f"{device_label(hardware.backend, hardware.device)} ({why})")

    def _lost(self, flight: _Flight, end: str) -> CellOutcome:
        hardware = flight.cell.request.hardware
        label = device_label(hardware.backend, hardware.device)
        result = failure(flight.cell.request, CRASH,
                         "; ".join([*flight.lost, f"{end} ({label})"]))
        return self._outcome(flight.cell, replace(result, details={"ray_lost": flight.lost}),
                             flight.lost_on)

