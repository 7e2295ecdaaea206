"""The keeper of a run's browser: ``python -m hwaccel_web.keeper FOLDER KEY OWNER EXE IDLE``.

Started by the first web job of a run (:func:`hwaccel_web.shared.attach`) in a session of its
own, it launches Chromium (which dies with the keeper, ``PR_SET_PDEATHSIG``), creates the
lease file, writes the run's record (DevTools endpoint, pids) and then watches, ten times a
second, for the end of the browser's use:

* the owner (the run's job zygote) is gone: the run has ended;
* no job has held a lease for ``IDLE`` seconds;
* SIGTERM: a job met a page that hung;
* the browser died: its exit status is written to the exit record, and the keeper waits for
  the jobs that still hold leases (they read how it ended) before it leaves.

Whatever the end, it removes the record under the run's lock (no job attaches to a browser
being stopped), kills every process of the browser, crash handlers included, and removes the
profile and its own files.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

from hwaccel_web.chromium import Chromium
from hwaccel_web.errors import BrowserError
from hwaccel_web.shared import RunFiles, alive, locked, started_at

POLL_S = 0.1
_CRASH_READERS_WAIT_S = 60.0
_asked_to_stop = False


def _on_term(_signum: int, _frame: object) -> None:
    """SIGTERM: stop the browser now (seen by :func:`watch` within one poll)."""
    global _asked_to_stop
    _asked_to_stop = True


def leases_free(lease: int) -> bool:
    """Whether no job holds a lease (nobody shares the lease file's lock)."""
    try:
        fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(lease, fcntl.LOCK_UN)
    return True


def watch(browser: Chromium, lease: int, owner: int, owner_started: float,
          idle_s: float) -> str:
    """Wait for the end of the browser's use; return why: ``stopped`` (SIGTERM),
    ``run-ended``, ``browser-died`` or ``idle``."""
    idle_since: float | None = None
    while True:
        time.sleep(POLL_S)
        if _asked_to_stop:
            return "stopped"
        if not alive(owner, owner_started):
            return "run-ended"
        if browser.ended() is not None:
            return "browser-died"
        if not leases_free(lease):
            idle_since = None
            continue
        now = time.monotonic()
        idle_since = idle_since or now
        if now - idle_since >= idle_s:
            return "idle"


def retire(files: RunFiles, browser: Chromium, lease: int, owner: int, owner_started: float,
           idle_s: float) -> str:
    """Watch the browser until its use has ended and remove the run's record; return why.

    The record goes under the run's lock, so no job attaches to a browser being stopped; an
    idle browser that a job attached to meanwhile is watched again.
    """
    me = os.getpid()
    while True:
        why = watch(browser, lease, owner, owner_started, idle_s)
        if why == "run-ended":  # no job is left to attach
            _forget(files, me)
            return why
        with locked(files.lock):
            if why != "idle" or leases_free(lease):
                _forget(files, me)
                return why


def serve(files: RunFiles, owner: int, executable: str, idle_s: float) -> int:
    """Keep the run's browser until its use ends (see the module docstring)."""
    owner_started = started_at(owner)
    if owner_started is None:
        return 0
    me = os.getpid()
    try:
        browser = Chromium(executable)
    except BrowserError as exc:
        files.write_state({"keeper": me, "error": str(exc)})
        return 1
    lease_file = files.lease(me)
    lease = os.open(lease_file, os.O_RDONLY | os.O_CREAT, 0o600)
    why = "stopped"
    try:
        files.write_state({
            "keeper": me, "keeper_started": started_at(me), "browser": browser.pid,
            "browser_started": started_at(browser.pid or 0), "endpoint": browser.endpoint,
            "executable": executable, "profile": str(browser.profile), "owner": owner})
        why = retire(files, browser, lease, owner, owner_started, idle_s)
        if why == "browser-died":
            files.exit_record(me).write_text(browser.ended() or "is gone", encoding="utf-8")
    finally:
        browser.close()
        _forget(files, me)
    if why == "browser-died":  # the jobs that met the crash read how it ended
        deadline = time.monotonic() + _CRASH_READERS_WAIT_S
        while not leases_free(lease) and alive(owner, owner_started) \
                and time.monotonic() < deadline:
            time.sleep(POLL_S)
    os.close(lease)
    lease_file.unlink(missing_ok=True)
    files.exit_record(me).unlink(missing_ok=True)
    if why == "run-ended":
        files.lock.unlink(missing_ok=True)
        files.log.unlink(missing_ok=True)
    return 0


def _forget(files: RunFiles, keeper: int) -> None:
    """Remove the run's record if it is this keeper's."""
    state = files.read_state()
    if state is not None and state.get("keeper") == keeper:
        files.state.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    """Entry point: ``FOLDER KEY OWNER EXECUTABLE IDLE_S``."""
    folder, key, owner, executable, idle = argv
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
    return serve(RunFiles(Path(folder), key), int(owner), executable, float(idle))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
