"""The process that owns a run: who it is, whether it is still alive, and who holds a file.

A run is owned by the ``hwaccel`` process that started it; the ``runs`` table keeps its host,
pid and start time so that a later process on the same host can tell that it is gone (killed
with ``kill -9``, a power cut) and mark the run ``interrupted``. The start time tells a
reused pid apart from the original process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psutil

#: two readings of one process's start time differ by less than this (seconds)
START_TIME_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Owner:
    """A process: the host it runs on, its pid and its start time (seconds since the epoch)."""

    host: str
    pid: int
    started: float


def this_process() -> Owner:
    """Return the identity of the calling process."""
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, psutil.Process(pid).create_time())


def is_gone(pid: int, started: float | None) -> bool:
    """Whether the process ``pid`` of this host that started at ``started`` has ended.

    A pid now used by a process that started at another time, or a zombie (ended, not yet
    reaped), counts as gone; a process this user may not inspect counts as alive.
    """
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > \
                START_TIME_TOLERANCE_S:
            return True
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def describe(pid: int) -> str:
    """Name a running process for a message: ``another hwaccel process (PID 42: hwaccel
    benchmark ...)`` or ``another process (PID 42: duckdb)``."""
    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"another process (PID {pid})"
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]
    if argv:
        argv = [os.path.basename(argv[0]), *argv[1:]]
    command = " ".join(argv)
    if len(command) > 80:
        command = command[:77] + "..."
    who = "another hwaccel process" if "hwaccel" in command else "another process"
    return f"{who} (PID {pid}: {command})" if command else f"{who} (PID {pid})"
