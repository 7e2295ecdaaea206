"""Finding, launching and always killing a headless Chromium process.

The browser is found at ``HWACCEL_CHROMIUM``, else at the system's Chromium or Chrome; hwaccel
never downloads one (``playwright install`` is never run). Each launch gets a fresh profile in
a temporary folder, loopback-only networking and the flags that expose WebGPU
(``--enable-unsafe-webgpu``) and WebNN (``WebMachineLearningNeuralNetwork``). The process is
started by the caller, stays in its process group and dies with it (``PR_SET_PDEATHSIG``);
its DevTools endpoint listens on 127.0.0.1 only. :meth:`Chromium.close` kills every process
of the browser, its detached crash handlers included, and removes the profile, whatever
state it is in.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hwaccel_web.errors import BrowserError

CHROMIUM_ENV = "HWACCEL_CHROMIUM"
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
              "/usr/bin/google-chrome-stable", "/snap/bin/chromium",
              "/Applications/Chromium.app/Contents/MacOS/Chromium",
              "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-default-browser-check", "--disable-extensions", "--mute-audio",
         "--enable-unsafe-webgpu", "--enable-features=WebMachineLearningNeuralNetwork",
         # no renderer started ahead of need: a page's renderers are the ones that start
         # after it opens (how a job's share of the browser's memory is found)
         "--disable-features=SpareRendererForSitePerProcess",
         # nothing but the page server on 127.0.0.1 is reachable from the page
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")
START_TIMEOUT_S = 30.0
_PORT_FILE = "DevToolsActivePort"


def find_chromium() -> tuple[str | None, str]:
    """Return (executable, how it was found), or (None, why none was found).

    ``HWACCEL_CHROMIUM`` wins and must name an executable file; otherwise the first of
    :data:`CANDIDATES`, then of :data:`NAMES` on ``PATH``, that exists.
    """
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            return None, f"{CHROMIUM_ENV}={named} does not exist"
        if not os.access(path, os.X_OK):
            return None, f"{CHROMIUM_ENV}={named} is not executable"
        return str(path), f"{CHROMIUM_ENV}"
    for candidate in CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate, "system"
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found, "PATH"
    return None, (f"no Chromium or Chrome found: {CHROMIUM_ENV} is not set and none of "
                  f"{', '.join(CANDIDATES[:4])} or {', '.join(NAMES[:3])} on PATH exists "
                  "(Debian: apt-get install chromium)")


def exit_description(code: int | None) -> str:
    """How a process ended, from its exit status (minus the signal that killed it)."""
    if code is None:
        return "is running"
    if code < 0:
        return f"died of {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL this process when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:600]


def process_tree(pid: int | None) -> list[Any]:
    """The live process ``pid`` and every process it started (psutil processes)."""
    import psutil

    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class Chromium:
    """One headless Chromium started by this process, with a fresh profile; a context manager.

    :param executable: the browser to start (default: :func:`find_chromium`).
    :raises BrowserError: no browser is found, or it exits or opens no DevTools port at start.
    """

    def __init__(self, executable: str | None = None):
        if executable is None:
            executable, how = find_chromium()
            if executable is None:
                raise BrowserError(how)
        self.executable = executable
        self.profile = Path(tempfile.mkdtemp(prefix="hwaccel-web-profile-"))
        self._log = self.profile.parent / f"{self.profile.name}.log"
        self._crash_dumps = self.profile / "Crash Reports"
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self.endpoint = self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> str:
        # Chromium's crash handlers detach from the browser's process tree; a database in
        # the profile keeps their dumps out of the home directory and names them as ours
        env = {**os.environ, "BREAKPAD_DUMP_LOCATION": str(self._crash_dumps)}
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl, before exec
        return self._wait_for_endpoint()

    def _wait_for_endpoint(self) -> str:
        """The DevTools WebSocket URL, once the browser wrote its port file."""
        assert self._proc is not None
        port_file = self.profile / _PORT_FILE
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise BrowserError(f"{self.executable} {exit_description(code)} at start: "
                                   f"{_last_lines(self._log) or 'no output'}")
            try:
                port, path = port_file.read_text(encoding="ascii").split()[:2]
                return f"ws://127.0.0.1:{int(port)}{path}"
            except (OSError, ValueError):
                time.sleep(0.02)
        raise BrowserError(f"{self.executable} did not open its DevTools port within "
                           f"{START_TIMEOUT_S:g} s: {_last_lines(self._log) or 'no output'}")

    @property
    def pid(self) -> int | None:
        """The browser's main process id (None once it is gone)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def ended(self) -> str | None:
        """How the browser ended ("died of SIGKILL"), or None while it runs."""
        if self._proc is None:
            return "was never started"
        code = self._proc.poll()
        return None if code is None else exit_description(code)

    def processes(self) -> list[Any]:
        """The browser, every process it started, and its detached crash handlers."""
        import psutil

        found = process_tree(self._proc.pid) if self._proc is not None else []
        database = f"--database={self._crash_dumps}"
        for process in psutil.process_iter(["name", "cmdline"]):
            if "crashpad" in (process.info["name"] or "") \
                    and database in (process.info["cmdline"] or ()):
                found.append(process)
        return found

    def kill(self) -> None:
        """SIGKILL the browser and every process it started; return once they are dead."""
        import psutil

        processes = self.processes()
        for process in processes:
            try:
                process.kill()
            except psutil.Error:
                pass
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _wait_until_dead(processes, timeout_s=5.0)

    def close(self) -> None:
        """Kill the browser's processes and remove its profile."""
        self.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_until_dead(processes: list[Any], timeout_s: float) -> None:
    """Wait until each of ``processes`` is gone or a zombie (those outside the browser's
    tree are reaped by someone else), at most ``timeout_s`` in all."""
    import psutil

    deadline = time.monotonic() + timeout_s
    for process in processes:
        while time.monotonic() < deadline:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(0.01)
