"""The run's browser: one headless Chromium shared by every web job of a run.

The jobs of a run are processes forked by one job zygote (:mod:`hwaccel.running.jobs`), which lives
as long as the run. The first job that needs a browser starts a keeper
(``python -m hwaccel_web.keeper``, in a session of its own so that a job killed for its time
limit does not take the browser with it); the keeper launches Chromium
(:class:`~hwaccel_web.chromium.Chromium`: throwaway profile, loopback only, crash handlers
in the profile) and records its DevTools endpoint in ``<cache>/web-browsers/<run>.json``. Later
jobs read that record and open their pages in the same browser, each in a browser context of
its own. A job holds a lease (a shared lock on the keeper's lease file) while its page is
open. The keeper stops the browser, killing every process of it and removing its profile,
when the run ends (the zygote is gone), when no job has held a lease for ``HWACCEL_WEB_IDLE``
seconds (default 60), when a job asks (a page that hung), or when the browser dies; then it
records how the browser ended for the job that met it. A job that finds no live browser
starts a new one, so a crashed browser is replaced. Starting and stopping take the run's lock
file, so two jobs never start two browsers and no job attaches to a browser being stopped.

A process that is not a job of a zygote (a generated test run by hand, code calling
:func:`hwaccel_web.session.load_in_browser`) gets a private browser per page, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel_web.browser import Browser, seconds_from_env
from hwaccel_web.chromium import START_TIMEOUT_S, exit_description, find_chromium
from hwaccel_web.errors import BrowserError

IDLE_ENV = "HWACCEL_WEB_IDLE"
DEFAULT_IDLE_S = 60.0
_EXIT_WAIT_S = 2.0
_STOP_WAIT_S = 15.0


def state_dir() -> Path:
    """``<cache>/web-browsers``: the records of the runs' browsers, created."""
    from hwaccel.kit.paths import cache_dir

    folder = cache_dir() / "web-browsers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def idle_s() -> float:
    """Seconds without a page after which a run's browser is stopped (``HWACCEL_WEB_IDLE``)."""
    return seconds_from_env(IDLE_ENV, DEFAULT_IDLE_S)


def started_at(pid: int) -> float | None:
    """The start time of process ``pid`` (None when it is gone or a zombie)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


def alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` still runs and is the one that started at ``started``."""
    now = started_at(pid)
    return now is not None and abs(now - started) < 0.01


def run_owner() -> int | None:
    """The process whose life is the run's: the job zygote that forked this process; None
    when this process is not a job."""
    from hwaccel.kit.jobs import job_owner

    return job_owner()


def run_key(owner: int, executable: str) -> str:
    """The name of a run's records: its owner process (pid and start) and the browser."""
    started = started_at(owner)
    if started is None:
        raise BrowserError(f"the run's process {owner} is gone")
    browser = hashlib.blake2b(executable.encode(), digest_size=4).hexdigest()
    return f"{owner}-{int(started * 1000)}-{browser}"


@dataclass(frozen=True)
class RunFiles:
    """The files of one run's browser in :func:`state_dir`."""

    folder: Path
    key: str

    @property
    def lock(self) -> Path:
        """Taken to start, stop or attach to the browser."""
        return self.folder / f"{self.key}.lock"

    @property
    def state(self) -> Path:
        """The live browser's record (absent when none runs)."""
        return self.folder / f"{self.key}.json"

    @property
    def log(self) -> Path:
        """The keeper's output."""
        return self.folder / f"{self.key}.log"

    def lease(self, keeper: int) -> Path:
        """Shared-locked by every job whose page is open in keeper ``keeper``'s browser."""
        return self.folder / f"{self.key}.{keeper}.lease"

    def exit_record(self, keeper: int) -> Path:
        """How keeper ``keeper``'s browser ended, once it died."""
        return self.folder / f"{self.key}.{keeper}.exit"

    def read_state(self) -> dict[str, Any] | None:
        """The record the keeper wrote, or None."""
        try:
            return json.loads(self.state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_state(self, state: dict[str, Any]) -> None:
        """Write the record atomically."""
        partial = self.state.with_name(f"{self.state.name}.{os.getpid()}")
        partial.write_text(json.dumps(state), encoding="utf-8")
        os.replace(partial, self.state)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created) for the block."""
    import fcntl

    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class SharedBrowser:
    """A lease on the run's browser: the host of one job's page (see :class:`Browser`).

    Built by :func:`attach`; :meth:`close` gives the lease back, leaving the browser to the
    run's other jobs.
    """

    def __init__(self, files: RunFiles, state: dict[str, Any], lease: Any):
        self.files = files
        self.executable: str = state["executable"]
        self.endpoint: str = state["endpoint"]
        self.keeper: int = state["keeper"]
        self._keeper_started: float = state["keeper_started"]
        self._browser: int = state["browser"]
        self._browser_started: float = state["browser_started"]
        self._lease = lease

    @property
    def pid(self) -> int | None:
        """The browser's main process (None once it is gone)."""
        return self._browser if alive(self._browser, self._browser_started) else None

    def ended(self) -> str | None:
        """How the browser ended, as its keeper recorded it; None while it runs."""
        if self.pid is not None:
            return None
        record = self.files.exit_record(self.keeper)
        deadline = time.monotonic() + _EXIT_WAIT_S
        while time.monotonic() < deadline:
            try:
                return record.read_text(encoding="utf-8")
            except OSError:
                if not alive(self.keeper, self._keeper_started):
                    break
                time.sleep(0.05)
        return "is gone"

    def kill(self) -> None:
        """Have the keeper stop the browser now (it kills every process of it); return once
        the keeper is gone."""
        if not alive(self.keeper, self._keeper_started):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.keeper, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_WAIT_S
        while alive(self.keeper, self._keeper_started) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(self.keeper, self._keeper_started):  # the browser dies with its keeper
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.keeper, signal.SIGKILL)

    def close(self) -> None:
        """Give the lease back."""
        if self._lease is not None:
            self._lease.close()
            self._lease = None


def _take_lease(files: RunFiles, state: dict[str, Any]) -> Any | None:
    """A shared lock on the live browser's lease file, or None when that browser is gone."""
    import fcntl

    if "endpoint" not in state or not alive(state["keeper"], state["keeper_started"]) \
            or not alive(state["browser"], state["browser_started"]):
        return None
    try:
        lease = open(files.lease(state["keeper"]), "rb")  # noqa: SIM115 - held by the lease
    except OSError:
        return None
    fcntl.flock(lease, fcntl.LOCK_SH)
    return lease


def _start_keeper(files: RunFiles, owner: int, executable: str) -> dict[str, Any]:
    """Start a keeper for the run and return its record once its browser listens."""
    files.state.unlink(missing_ok=True)
    with open(files.log, "wb") as log:
        keeper = subprocess.Popen(
            [sys.executable, "-m", "hwaccel_web.keeper", str(files.folder), files.key,
             str(owner), executable, str(idle_s())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S + 15
    while time.monotonic() < deadline:
        state = files.read_state()
        if state is not None and state.get("keeper") == keeper.pid:
            if "error" in state:
                files.state.unlink(missing_ok=True)
                raise BrowserError(state["error"])
            return state
        code = keeper.poll()
        if code is not None:
            lines = files.log.read_text(errors="replace").strip().splitlines()
            raise BrowserError(f"the browser keeper {exit_description(code)} at start: "
                               f"{lines[-1] if lines else 'no output'}")
        time.sleep(0.02)
    keeper.kill()
    raise BrowserError(f"the browser keeper started no browser within "
                       f"{START_TIMEOUT_S + 15:g} s")


def _owner_of(key: str) -> tuple[int, float] | None:
    """The owner pid and start time a run key names (see :func:`run_key`)."""
    owner, _, rest = key.partition("-")
    started = rest.partition("-")[0]
    return (int(owner), int(started) / 1000) if owner.isdigit() and started.isdigit() \
        else None


def sweep(folder: Path) -> None:
    """Remove the files of runs that ended without their keeper cleaning up (a keeper killed
    outright): those whose owner is gone and whose keeper, if any, too."""
    for path in folder.iterdir():
        key = path.name.split(".")[0]
        owner = _owner_of(key)
        if owner is None or alive(*owner):
            continue
        state = RunFiles(folder, key).read_state() or {}
        if "keeper_started" in state and alive(state["keeper"], state["keeper_started"]):
            continue
        path.unlink(missing_ok=True)


def attach(owner: int, executable: str | None = None) -> SharedBrowser:
    """A lease on the run's browser, started when the run has none running.

    :param owner: the process whose end is the run's end (the job zygote).
    :param executable: the browser (default: :func:`~hwaccel_web.chromium.find_chromium`).
    :raises BrowserError: no browser is found, or it does not start.
    """
    if executable is None:
        executable, how = find_chromium()
        if executable is None:
            raise BrowserError(how)
    files = RunFiles(state_dir(), run_key(owner, executable))
    with locked(files.lock):
        state = files.read_state()
        lease = _take_lease(files, state) if state is not None else None
        if lease is None:
            sweep(files.folder)
            state = _start_keeper(files, owner, executable)
            lease = _take_lease(files, state)
            if lease is None:
                raise BrowserError(f"the browser of {executable} died as it started")
    return SharedBrowser(files, state, lease)


def open_page(executable: str | None = None, timeout_s: float | None = None) -> Browser:
    """A page in the run's browser when this process is a job of a run, else in a private
    browser (see the module's docstring)."""
    owner = run_owner()
    if owner is None:
        return Browser(executable, timeout_s)
    host = attach(owner, executable)
    try:
        return Browser(timeout_s=timeout_s, host=host)
    except BaseException:
        host.close()
        raise
