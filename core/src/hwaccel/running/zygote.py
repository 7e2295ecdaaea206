"""The job zygote: ``python -m hwaccel.running.zygote``, a process that forks one child per job.

Starting a fresh Python for every job would spend 5 s or more on importing torch and
transformers before any model loads. The zygote imports them once (on Linux; elsewhere it
preloads nothing, since forking after Apple's frameworks initialise is unsafe) and forks a
child per job, so every job still runs in its own process: a crash, a hang or an
out-of-memory kills only that child. Each child starts its own session (the driver kills
its whole process group), dies with the zygote (``PR_SET_PDEATHSIG``), writes its output to
its own log, may be pinned to CPU cores, and resets the kernel's memory high-water mark so
that ``VmHWM`` covers this job only.

Protocol, one JSON object per line. The driver writes jobs on the zygote's stdin:
``{"kind", "payload", "result", "log", "cpus"}``; the zygote answers on its original stdout
``{"started": pid}`` for every job in order, and ``{"exited": pid, "code": c}`` whenever a
child ends (``c`` is the exit status, or minus the signal that killed it). When stdin
closes the zygote kills its remaining children and exits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import traceback
from typing import Any

# What every job needs and costs seconds to import (see MACHINE-NOTES: import costs).
PRELOAD = ("torch", "transformers", "transformers.modeling_utils", "pytest")


def _preload() -> None:
    if not sys.platform.startswith("linux"):
        return
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a job that needs it will report the failure
            pass


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent (the zygote) dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _reset_memory_peak() -> None:
    """Start ``VmHWM`` afresh at the current resident size (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def dispatch(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one job of ``kind`` in this process and return its JSON-safe result."""
    from hwaccel.running import worker as _worker
    jobs = {"benchmark": _worker.benchmark_job, "test": _worker.test_job}
    if kind not in jobs:
        raise ValueError(f"unknown job kind {kind!r}")
    return jobs[kind](payload)


def _child(job: dict[str, Any], parent: int) -> None:
    """Set up the forked child, run its job, write the result, and exit. Never returns."""
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        if os.getppid() != parent:
            os._exit(1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        if job.get("cpus") and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, job["cpus"])
        _reset_memory_peak()
        result = dispatch(job["kind"], job["payload"])
        partial = job["result"] + ".tmp"
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(result, out)
        os.replace(partial, job["result"])
        code = 0
    except BaseException:  # noqa: BLE001 - the log is the only place left to say it
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve() -> None:
    """Read jobs from stdin and fork a child for each until stdin closes."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints of preloaded modules must not corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _preload()
    zygote = os.getpid()
    children: set[int] = set()
    pending = b""
    stdin = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.05)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            protocol.write(json.dumps({"exited": pid, "code": _exit_code(status)}) + "\n")
        if not readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            job = json.loads(line)
            pid = os.fork()
            if pid == 0:
                protocol.close()
                _child(job, zygote)
            children.add(pid)
            protocol.write(json.dumps({"started": pid}) + "\n")
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    serve()
