"""Run jobs in their own processes, forked by a zygote, with a time and a memory limit.

:class:`JobPool` starts one :mod:`hwaccel.running.zygote` (lazily, with the environment of the
moment) and asks it to fork a child per job. While a job runs the pool watches it: past its
time limit, or once its process group's resident memory passes the memory limit, the whole
group is killed with SIGKILL. Every job ends as a :class:`JobOutcome` whose ``status`` is
``ok`` (a result was written), ``timeout``, ``oom`` (over the pool's limit), ``killed``
(SIGKILL from elsewhere, typically the kernel's out-of-memory killer), ``crash`` (any other
death, with the last line the job printed) or ``cancelled`` (the pool was closed, e.g. on
Ctrl-C). The pool is thread-safe: the matrix runs one job per worker thread.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.jobs import ZYGOTE_MODULE
from hwaccel.running.zygote import PRELOAD, modules_for

_POLL_S = 0.05
_MEMORY_POLL_S = 0.1


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended; ``result`` is what the job returned when ``status == "ok"``."""

    status: str
    result: dict[str, Any] | None
    message: str
    wall_s: float


def last_line(text: str) -> str:
    """Return the last non-empty line of ``text`` (at most 500 characters)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _group_rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` and its descendants, in MiB (None once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        return None
    return total / 2**20


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Zygote:
    """One running zygote process and the thread that reads its answers."""

    def __init__(self, env: dict[str, str], log: Path, kinds: tuple[str, ...]):
        self.log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", ZYGOTE_MODULE, *kinds], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True)
        self.started: queue.Queue[int | None] = queue.Queue()
        self.exits: dict[int, int | None] = {}
        self.exited = threading.Condition()
        self.dead = False
        self.submitted = 0
        threading.Thread(target=self._read, name="hwaccel-zygote-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "started" in message:
                self.started.put(message["started"])
            elif "exited" in message:
                with self.exited:
                    self.exits[message["exited"]] = message["code"]
                    self.exited.notify_all()
        with self.exited:
            self.dead = True
            self.exited.notify_all()
        self.started.put(None)

    def submit(self, job: dict[str, Any]) -> int | None:
        """Send one job and return the child's pid (None when the zygote died)."""
        if self.dead:
            return None
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        self.submitted += 1
        return self.started.get()

    def wait_exit(self, pid: int, timeout: float) -> tuple[bool, int | None]:
        """Wait up to ``timeout`` s for ``pid`` to end: (ended, exit code or None)."""
        with self.exited:
            if pid not in self.exits and not self.dead:
                self.exited.wait(timeout)
            if pid in self.exits:
                return True, self.exits.pop(pid)
            return self.dead, None

    def close(self) -> None:
        """Close the zygote's stdin (it kills and reaps its children, then leaves with
        ``os._exit``, so the wait is short) and reap it; a zygote that was never given a job
        (started early, then the command stopped on bad input) is killed at once, without
        waiting for its imports to finish."""
        if not self.submitted:
            _kill_group(self.proc.pid)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.wait()
        self.log.close()


def default_memory_limit() -> float:
    """80% of the memory available now, in MiB: what a job may use unless told otherwise
    (``--memory-limit``)."""
    import psutil

    return psutil.virtual_memory().available * 0.8 / 2**20


class JobPool:
    """Runs jobs in forked children of one zygote; use as a context manager.

    :param env: environment of the zygote and so of every job (default: this process's,
        with ``HF_HUB_OFFLINE=1`` so that no job reaches a model hub).
    :param memory_limit_mb: kill a job whose process group's resident memory exceeds this.
    :param kinds: the job kinds the pool will run (default: every kind); the zygote
        preloads what they need (pytest only for ``test``). A job of another kind still
        runs, importing what it needs in its own process.
    """

    def __init__(self, env: dict[str, str] | None = None,
                 memory_limit_mb: float | None = None,
                 kinds: tuple[str, ...] = tuple(PRELOAD)):
        self.env = {**(env if env is not None else os.environ), "HF_HUB_OFFLINE": "1"}
        self.memory_limit_mb = memory_limit_mb
        modules_for(kinds)  # an unknown kind is refused here, not in the zygote's log
        self.kinds = kinds
        self._tmp = tempfile.TemporaryDirectory(prefix="hwaccel-jobs-")
        self._zygote: _Zygote | None = None
        self._submit = threading.Lock()
        self._running: set[int] = set()
        self._closed = False
        self._count = 0

    def __enter__(self) -> JobPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> JobPool:
        """Start the zygote now, so that its imports overlap the caller's own work (planning)
        instead of delaying the first job; returns the pool."""
        self._zygote_for_submit()
        return self

    def _zygote_for_submit(self) -> _Zygote:
        if self._zygote is None or self._zygote.dead:
            if self._zygote is not None:
                self._zygote.close()
            self._zygote = _Zygote(self.env, Path(self._tmp.name) / "zygote.log", self.kinds)
        return self._zygote

    def run(self, kind: str, payload: dict[str, Any], *, timeout_s: float,
            cpus: list[int] | None = None) -> JobOutcome:
        """Run one job in its own process and return how it ended."""
        with self._submit:  # close() takes this lock too: nothing starts once it is closed
            if self._closed:
                return JobOutcome("cancelled", None, "the job pool was closed", 0.0)
            self._count += 1
            folder = Path(self._tmp.name) / f"job-{self._count}"
            folder.mkdir()
            result_file, log_file = folder / "result.json", folder / "log.txt"
            zygote = self._zygote_for_submit()
            pid = zygote.submit({"kind": kind, "payload": payload, "result": str(result_file),
                                 "log": str(log_file), "cpus": cpus})
            if pid is None:
                tail = last_line(Path(self._tmp.name, "zygote.log").read_text(errors="replace"))
                raise HwaccelError(f"the job zygote could not start a job: {tail or 'it died'}")
            started = time.perf_counter()  # the limit starts once the zygote has forked
            self._running.add(pid)
        try:
            return self._watch(zygote, pid, started, timeout_s, result_file, log_file)
        finally:
            self._running.discard(pid)

    def _watch(self, zygote: _Zygote, pid: int, started: float, timeout_s: float,
               result_file: Path, log_file: Path) -> JobOutcome:
        next_memory_check = 0.0
        while True:
            ended, code = zygote.wait_exit(pid, _POLL_S)
            wall = time.perf_counter() - started
            if ended and self._closed:  # killed by close(), not by its own doing
                return JobOutcome("cancelled", None, "stopped before it finished", wall)
            if ended:
                break
            if self._closed:
                _kill_group(pid)
                zygote.wait_exit(pid, 5)
                return JobOutcome("cancelled", None, "stopped before it finished", wall)
            if wall > timeout_s:
                _kill_group(pid)
                zygote.wait_exit(pid, 5)
                return JobOutcome("timeout", None, f"no result within the time limit of "
                                  f"{timeout_s:g} s; killed", wall)
            if self.memory_limit_mb and wall >= next_memory_check:
                next_memory_check = wall + _MEMORY_POLL_S
                rss = _group_rss_mb(pid) or 0.0
                if rss > self.memory_limit_mb:
                    _kill_group(pid)
                    zygote.wait_exit(pid, 5)
                    return JobOutcome("oom", None, f"used {rss:,.0f} MiB, over the memory "
                                      f"limit of {self.memory_limit_mb:,.0f} MiB; killed",
                                      wall)
        log_text = log_file.read_text(encoding="utf-8", errors="replace") \
            if log_file.is_file() else ""
        if result_file.is_file():
            return JobOutcome("ok", json.loads(result_file.read_text("utf-8")), "", wall)
        if code is None:
            return JobOutcome("crash", None, "the job zygote died", wall)
        if code == -signal.SIGKILL:
            return JobOutcome("killed", None, "job process was killed (SIGKILL: out of "
                              "memory?)", wall)
        if code < 0:
            name = signal.Signals(-code).name
            return JobOutcome("crash", None, f"job process died of {name}: "
                              f"{last_line(log_text)}", wall)
        return JobOutcome("crash", None, f"job process exited with {code}: "
                          f"{last_line(log_text)}", wall)

    def close(self) -> None:
        """Kill every running job, stop the zygote and remove the job folders."""
        self._closed = True
        for pid in list(self._running):
            _kill_group(pid)
        with self._submit:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None
            self._tmp.cleanup()
