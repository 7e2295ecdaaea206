"""The job zygote: ``python -m hwaccel.running.zygote``, a process that forks one child per job.

Starting a fresh Python for every job would spend 5 s or more on importing torch and
transformers before any model loads. The zygote imports them once (on Linux; elsewhere it
preloads nothing, since forking after Apple's frameworks initialise is unsafe) and forks a
child per job. What it imports is what the job kinds named on its command line need
(``python -m hwaccel.running.zygote benchmark``: :data:`PRELOAD`; pytest only for ``test``
jobs); a job of a kind not named still runs, its child importing what it needs itself.
Every job runs in its own process: a crash, a hang or an out-of-memory kills only that
child. Each child starts its own session (the driver kills
its whole process group), dies with the zygote (``PR_SET_PDEATHSIG``), writes its output to
its own log, may be pinned to CPU cores, and resets the kernel's memory high-water mark so
that ``VmHWM`` covers this job only.

Protocol, one JSON object per line. The driver writes jobs on the zygote's stdin:
``{"kind", "payload", "result", "log", "cpus"}``; the zygote answers on its original stdout
``{"started": pid}`` for every job in order, and ``{"exited": pid, "code": c}`` whenever a
child ends (``c`` is the exit status, or minus the signal that killed it). When stdin
closes the zygote kills its remaining children, reaps them, flushes the protocol and exits
with ``os._exit`` (status 0; 1 after an error of its own, whose traceback goes to stderr):
the interpreter's normal shutdown with torch and transformers loaded would take a second
or more, and nothing is left for it to do.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import traceback
from collections.abc import Iterable
from typing import Any, NoReturn

# What the jobs of each kind need and costs seconds to import (see MACHINE-NOTES: import
# costs); the keys are the job kinds :func:`dispatch` runs.
_MODELS = ("torch", "transformers", "transformers.modeling_utils")
PRELOAD: dict[str, tuple[str, ...]] = {"benchmark": _MODELS, "test": (*_MODELS, "pytest")}


def modules_for(kinds: Iterable[str]) -> list[str]:
    """The modules to preload for jobs of ``kinds``, in order, without repeats."""
    unknown = sorted(set(kinds) - PRELOAD.keys())
    if unknown:
        raise ValueError(f"unknown job kind(s) {', '.join(unknown)}; known: "
                         f"{', '.join(PRELOAD)}")
    return list(dict.fromkeys(name for kind in kinds for name in PRELOAD[kind]))


def _preload(modules: list[str]) -> None:
    if not sys.platform.startswith("linux"):
        return
    import importlib

    for name in modules:
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


def serve(kinds: Iterable[str]) -> None:
    """Preload what jobs of ``kinds`` need, then read jobs from stdin and fork a child for
    each until stdin closes; kill and reap the children left."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints of preloaded modules must not corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _preload(modules_for(kinds))
    zygote = os.getpid()
    children: set[int] = set()
    try:
        _serve_jobs(protocol, zygote, children)
    finally:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        protocol.flush()


def _serve_jobs(protocol: Any, zygote: int, children: set[int]) -> None:
    """Fork a child per job line on stdin, reporting starts and exits, until stdin closes."""
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
            return
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


def main(argv: list[str]) -> NoReturn:
    """Serve jobs of the kinds in ``argv`` (every kind when none is named), then leave with
    ``os._exit``, skipping the interpreter's slow shutdown of what was preloaded."""
    code = 1
    try:
        serve(argv or PRELOAD)
        code = 0
    except BaseException:  # noqa: BLE001 - stderr (the zygote's log) is where it is said
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
