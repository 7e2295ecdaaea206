"""Finding, launching and always killing a headless Chromium, driven through Playwright.

The browser is found at ``HWACCEL_CHROMIUM``, else at the system's Chromium or Chrome; hwaccel
never downloads one (``playwright install`` is never run). Each launch gets a fresh profile in
a temporary folder, loopback-only networking and the flags that expose WebGPU
(``--enable-unsafe-webgpu``) and WebNN (``WebMachineLearningNeuralNetwork``). hwaccel starts
the process itself, so that it stays in the caller's process group (a job killed by the job
pool takes the whole browser with it) and dies with its parent (``PR_SET_PDEATHSIG``);
Playwright connects to it over the DevTools protocol on 127.0.0.1. :meth:`Browser.close`
kills every process of the browser and removes the profile, whatever state it is in.

Each call into the page runs under a watchdog: a call that does not answer within its time
limit kills the browser and raises :class:`BrowserHang`; a browser that dies meanwhile raises
:class:`BrowserCrash` with how it ended.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError

CHROMIUM_ENV = "HWACCEL_CHROMIUM"
TIMEOUT_ENV = "HWACCEL_WEB_TIMEOUT"
DEFAULT_TIMEOUT_S = 180.0
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
              "/usr/bin/google-chrome-stable", "/snap/bin/chromium",
              "/Applications/Chromium.app/Contents/MacOS/Chromium",
              "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-default-browser-check", "--disable-extensions", "--mute-audio",
         "--enable-unsafe-webgpu", "--enable-features=WebMachineLearningNeuralNetwork",
         # nothing but the page server on 127.0.0.1 is reachable from the page
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")
_START_TIMEOUT_S = 30.0
_PORT_FILE = "DevToolsActivePort"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BrowserError(HwaccelError):
    """The browser could not be found, started or driven (the message says why)."""


class BrowserCrash(BrowserError):
    """The browser or its page died during a call."""


class BrowserHang(BrowserError):
    """A call into the page gave no answer within its time limit; the browser was killed."""


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


def call_timeout_s() -> float:
    """The time limit of one call into the page (``HWACCEL_WEB_TIMEOUT``, seconds)."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        raise BrowserError(f"{TIMEOUT_ENV} must be a number of seconds, not "
                           f"{os.environ[TIMEOUT_ENV]!r}") from None
    return value if value > 0 else DEFAULT_TIMEOUT_S


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


def _exit_description(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        return f"died of {signal.Signals(-code).name}"
    return f"exited with status {code}"


class Browser:
    """One headless Chromium with a fresh profile, and one page; use as a context manager.

    :param executable: the browser to start (default: :func:`find_chromium`).
    :param timeout_s: the time limit of each call into the page (default:
        :func:`call_timeout_s`).
    """

    def __init__(self, executable: str | None = None, timeout_s: float | None = None):
        if executable is None:
            executable, how = find_chromium()
            if executable is None:
                raise BrowserError(how)
        self.executable = executable
        self.timeout_s = timeout_s or call_timeout_s()
        self.profile = Path(tempfile.mkdtemp(prefix="hwaccel-web-profile-"))
        self.console: list[str] = []
        self.version: str | None = None
        self._log = self.profile.parent / f"{self.profile.name}.log"
        self._crash_dumps = self.profile / "Crash Reports"
        self._proc: subprocess.Popen[bytes] | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self.page: Any = None
        self._crashed = False
        self._hung = False
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        # Chromium's crash handlers detach from the browser's process tree; a database in
        # the profile keeps their dumps out of the home directory and names them as ours
        env = {**os.environ, "BREAKPAD_DUMP_LOCATION": str(self._crash_dumps)}
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl, before exec
        endpoint = self._wait_for_endpoint()
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._guarded(lambda: self._connect(endpoint), f"connecting to {self.executable}")

    def _connect(self, endpoint: str) -> None:
        """Connect Playwright to the browser and open the page."""
        self._browser = self._playwright.chromium.connect_over_cdp(
            endpoint, timeout=_START_TIMEOUT_S * 1000)
        self.version = self._browser.version
        context = self._browser.contexts[0] if self._browser.contexts \
            else self._browser.new_context()
        self.page = context.new_page()
        self.page.on("console", lambda message: self.console.append(
            _ANSI.sub("", f"{message.type}: {message.text}")[:1000]))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.on("crash", lambda _page: setattr(self, "_crashed", True))

    def _wait_for_endpoint(self) -> str:
        """The DevTools WebSocket URL, once the browser wrote its port file."""
        assert self._proc is not None
        port_file = self.profile / _PORT_FILE
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise BrowserError(f"{self.executable} {_exit_description(code)} at start: "
                                   f"{_last_lines(self._log) or 'no output'}")
            try:
                port, path = port_file.read_text(encoding="ascii").split()[:2]
                return f"ws://127.0.0.1:{int(port)}{path}"
            except (OSError, ValueError):
                time.sleep(0.02)
        raise BrowserError(f"{self.executable} did not open its DevTools port within "
                           f"{_START_TIMEOUT_S:g} s: {_last_lines(self._log) or 'no output'}")

    @property
    def pid(self) -> int | None:
        """The browser's main process id (None once it is gone)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def goto(self, url: str) -> None:
        """Open ``url`` in the page (under the watchdog)."""
        self._guarded(lambda: self.page.goto(url, timeout=self.timeout_s * 1000),
                      f"opening {url}")

    def evaluate(self, expression: str, arg: Any = None, *, what: str = "a call") -> Any:
        """Evaluate ``expression`` (a JavaScript function) in the page with ``arg``.

        :raises BrowserHang: no answer within the time limit (the browser is killed).
        :raises BrowserCrash: the browser or the page died.
        :raises BrowserError: the page's code threw; the message is the browser's.
        """
        return self._guarded(lambda: self.page.evaluate(expression, arg), what)

    def _guarded(self, call: Any, what: str) -> Any:
        if self._proc is None or self._playwright is None:
            raise BrowserCrash("the browser is closed")
        watchdog = threading.Timer(self.timeout_s, self._on_hang)
        watchdog.daemon = True
        watchdog.start()
        try:
            return call()
        except Exception as exc:  # Playwright raises its own Error for every failure
            if self._hung:
                raise BrowserHang(f"the browser gave no answer to {what} within "
                                  f"{self.timeout_s:g} s; killed it") from None
            code = self._proc.poll()
            if self._crashed or code is not None or "closed" in str(exc):
                time.sleep(0.2)  # let the exit status arrive
                code = self._proc.poll()
                how = f"the browser {_exit_description(code)}" if code is not None \
                    else "the page crashed"
                raise BrowserCrash(f"{how} during {what}: {_first_line(exc)}") from None
            raise BrowserError(_first_line(exc)) from None
        finally:
            watchdog.cancel()

    def _on_hang(self) -> None:
        self._hung = True
        self._kill()

    def peak_rss_mb(self) -> float | None:
        """The sum of the kernel's memory high-water marks of the browser's processes (MiB)."""
        processes = self._processes()
        if not processes:
            return None
        total = 0
        for process in processes:
            try:
                with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024.0 if total else None

    def _processes(self) -> list[Any]:
        """The browser, every process it started, and its detached crash handlers."""
        import psutil

        if self._proc is None:
            return []
        try:
            root = psutil.Process(self._proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        return tree + self._crash_handlers()

    def _crash_handlers(self) -> list[Any]:
        """The crash handler processes writing to this browser's crash dump database."""
        import psutil

        database = f"--database={self._crash_dumps}"
        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            if "crashpad" in (process.info["name"] or "") \
                    and database in (process.info["cmdline"] or ()):
                found.append(process)
        return found

    def _kill(self) -> None:
        """SIGKILL the browser and every process it started; return once they are dead."""
        import psutil

        processes = self._processes()
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
        """Kill the browser's processes, stop Playwright and remove the profile."""
        self._kill()
        if self._playwright is not None:
            try:
                self._playwright.stop()
            except Exception:  # noqa: BLE001 - the browser is already gone
                pass
            self._playwright = None
        self.page = None
        shutil.rmtree(self.profile, ignore_errors=True)
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> Browser:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("="):
            return line[:500]
    return type(exc).__name__
