"""One page in a headless Chromium, driven through Playwright, every call under a watchdog.

A :class:`Browser` is one page, in a browser context of its own (its own storage and its own
renderer processes), of a Chromium reached over the DevTools protocol on 127.0.0.1. That
Chromium is its *host*: either a private one that the object starts and kills when it closes
(:class:`~hwaccel_web.chromium.Chromium`), or the run's browser that a keeper process holds for
every job of a run (:mod:`hwaccel_web.shared`), where closing the page closes its context only.

Each call into the page runs under a watchdog: a call that does not answer within its time
limit stops the browser (shared or not: a hung GPU process holds every page) and raises
:class:`~hwaccel_web.errors.BrowserHang`; a browser that dies meanwhile raises
:class:`~hwaccel_web.errors.BrowserCrash` with how it ended; code in the page that throws
raises :class:`~hwaccel_web.errors.PageError` with the browser's message.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
from typing import Any, Protocol

from hwaccel_web.chromium import Chromium
from hwaccel_web.errors import BrowserCrash, BrowserError, BrowserHang, PageError
from hwaccel_web.page_memory import PageMemory

TIMEOUT_ENV = "HWACCEL_WEB_TIMEOUT"
DEFAULT_TIMEOUT_S = 180.0
_CONNECT_TIMEOUT_S = 30.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_driver: Any = None


class Host(Protocol):
    """A running Chromium that pages are opened in."""

    executable: str
    endpoint: str

    @property
    def pid(self) -> int | None:
        """The browser's main process (None once it is gone)."""

    def ended(self) -> str | None:
        """How the browser ended ("died of SIGKILL"), or None while it runs."""

    def kill(self) -> None:
        """Kill the browser now, every process of it."""

    def close(self) -> None:
        """The page is done with the browser (a private one is killed)."""


def seconds_from_env(name: str, default: float) -> float:
    """Seconds set by the environment variable ``name``; ``default`` when it is unset, not
    positive or not a number (NaN).

    :raises BrowserError: when it is set to something that is no number.
    """
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        raise BrowserError(f"{name} must be a number of seconds, not "
                           f"{os.environ[name]!r}") from None
    return value if value > 0 else default


def call_timeout_s() -> float:
    """The time limit of one call into the page (``HWACCEL_WEB_TIMEOUT``, seconds)."""
    return seconds_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def playwright() -> Any:
    """This process's Playwright, started on first use and stopped at exit: its sync API
    allows one per process, and every page of the process connects through it."""
    global _driver
    if _driver is None:
        from playwright.sync_api import sync_playwright

        _driver = sync_playwright().start()
        atexit.register(stop_playwright)
    return _driver


def stop_playwright() -> None:
    """Stop this process's Playwright (at exit, or before the process uses Playwright's sync
    API on its own: only one may run in a thread); the next page starts it again."""
    global _driver
    if _driver is not None:
        driver, _driver = _driver, None
        driver.stop()


class Browser:
    """One page in a headless Chromium; use as a context manager.

    :param executable: the browser to start when no ``host`` is given (default:
        :func:`~hwaccel_web.chromium.find_chromium`).
    :param timeout_s: the time limit of each call into the page (default:
        :func:`call_timeout_s`).
    :param host: a running browser to open the page in (the run's shared browser); without
        one a private Chromium is started, and killed by :meth:`close`.
    """

    def __init__(self, executable: str | None = None, timeout_s: float | None = None, *,
                 host: Host | None = None):
        self.timeout_s = timeout_s or call_timeout_s()
        self.console: list[str] = []
        self.version: str | None = None
        self.page: Any = None
        self.memory: PageMemory | None = None
        self._connection: Any = None
        self._context: Any = None
        self._crashed = False
        self._hung = False
        self._closed = False
        self.shared = host is not None
        self.host: Host = host if host is not None else Chromium(executable)
        self.executable = self.host.executable
        try:
            driver = playwright()  # a missing Playwright is a missing dependency, not a crash
            self._guarded(lambda: self._connect(driver), f"connecting to {self.executable}")
        except BaseException:
            self.close()
            raise

    def _connect(self, driver: Any) -> None:
        """Connect Playwright to the browser and open the page in a context of its own."""
        self._connection = driver.chromium.connect_over_cdp(
            self.host.endpoint, timeout=_CONNECT_TIMEOUT_S * 1000)
        self.version = self._connection.version
        self.memory = PageMemory(self.host.pid)
        self._context = self._connection.new_context()
        self.page = self._context.new_page()
        self.page.on("console", lambda message: self.console.append(
            _ANSI.sub("", f"{message.type}: {message.text}")[:1000]))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.on("crash", lambda _page: setattr(self, "_crashed", True))

    @property
    def pid(self) -> int | None:
        """The browser's main process id (None once it is gone)."""
        return self.host.pid

    def goto(self, url: str) -> None:
        """Open ``url`` in the page (under the watchdog)."""
        self._guarded(lambda: self.page.goto(url, timeout=self.timeout_s * 1000),
                      f"opening {url}")

    def evaluate(self, expression: str, arg: Any = None, *, what: str = "a call") -> Any:
        """Evaluate ``expression`` (a JavaScript function) in the page with ``arg``.

        :raises BrowserHang: no answer within the time limit (the browser is killed).
        :raises BrowserCrash: the browser or the page died.
        :raises PageError: the page's code threw; the message is the browser's.
        """
        return self._guarded(lambda: self.page.evaluate(expression, arg), what)

    def page_peaks(self) -> dict[str, Any]:
        """What this page cost in the browser (:meth:`PageMemory.peaks`)."""
        return self.memory.peaks() if self.memory is not None else {}

    def _guarded(self, call: Any, what: str) -> Any:
        if self._closed:
            raise BrowserCrash("the page is closed")
        watchdog = threading.Timer(self.timeout_s, self._on_hang)
        watchdog.daemon = True
        watchdog.start()
        try:
            return call()
        except Exception as exc:  # Playwright raises its own Error for every failure
            if self._hung:
                raise BrowserHang(f"the browser gave no answer to {what} within "
                                  f"{self.timeout_s:g} s; killed it") from None
            ended = self.host.ended()
            if self._crashed or ended is not None or "closed" in str(exc):
                time.sleep(0.2)  # let the exit status arrive
                ended = self.host.ended()
                how = f"the browser {ended}" if ended is not None else "the page crashed"
                raise BrowserCrash(f"{how} during {what}: {_first_line(exc)}") from None
            raise PageError(_first_line(exc)) from None
        finally:
            watchdog.cancel()

    def _on_hang(self) -> None:
        self._hung = True
        self.host.kill()

    def close(self) -> None:
        """Close the page's context and disconnect (under the watchdog), then let go of the
        browser: a private one is killed and its profile removed."""
        if self._connection is not None and not self._hung:
            try:
                self._guarded(self._connection.close, "closing the page")
            except BrowserError:
                pass  # the browser is gone or was stopped: nothing is left to close
        self._connection = self._context = self.page = None
        self._closed = True
        self.host.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("="):
            return line[:500]
    return type(exc).__name__
