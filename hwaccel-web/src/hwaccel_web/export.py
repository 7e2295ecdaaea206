"""The export before a web measurement, in a forked copy of the job process.

:func:`hwaccel.kit.onnx_prepare.export_first` exports in a fresh Python, which spends seconds
importing torch and transformers even when the export is already in the cache. A job forked
by the zygote has them imported and has run nothing yet, so :class:`ExportBeforeMeasuring`
forks it instead and runs the same export (:func:`hwaccel.kit.onnx_prepare.main`) in the child:
the exporter's memory stays out of the measured process's high-water mark and its time out of
the load time, as with ``export_first``, at the cost of a fork, and the job can open its
browser page meanwhile. Where forking is not safe (not Linux, or threads already run), it
calls ``export_first``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import CRASH, category_of, one_line, where
from hwaccel.kit.onnx_prepare import export_first, main
from hwaccel.types import BenchmarkRequest
from hwaccel_web.chromium import exit_description


def can_fork() -> bool:
    """Whether this process may fork a copy that uses torch: Linux, and no thread runs but
    this one (none of torch's thread pools has started, no Playwright connection)."""
    try:
        return sys.platform.startswith("linux") and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _export_in_child(request_file: Path, outcome_file: Path) -> None:
    """In the forked child: export, the outcome line into ``outcome_file``. Never returns.

    An exception that :func:`~hwaccel.kit.onnx_prepare.main` lets through is attributed as any
    other (:func:`hwaccel.kit.failures.category_of`) rather than left to read as a crash.
    """
    code = 1
    try:
        out = os.open(outcome_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        code = main([str(request_file)])
    except Exception as exc:  # noqa: BLE001 - every failure leaves here attributed
        traceback.print_exc()
        print(json.dumps({"error": f"export: {one_line(exc)} (at {where(exc)})",
                          "category": category_of(exc)}))
    except BaseException:  # noqa: BLE001 - the job's log is the only place left to say it
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class ExportBeforeMeasuring:
    """The request's export (or its cache hit) running in a forked copy of this process
    while the caller goes on; :meth:`wait` returns the outcome as
    :func:`~hwaccel.kit.onnx_prepare.export_first` does: ``path`` on success, else ``error`` and
    ``category``. Where forking is not safe, the export runs in ``export_first`` at once."""

    def __init__(self, request: BenchmarkRequest):
        self._outcome: dict[str, Any] | None = None
        if not can_fork():
            self._outcome = export_first(request)
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="hwaccel-onnx-")
        request_file = Path(self._tmp.name) / "request.json"
        self._outcome_file = Path(self._tmp.name) / "outcome"
        request_file.write_text(json.dumps(request.to_dict()), encoding="utf-8")
        sys.stdout.flush()
        sys.stderr.flush()
        self._pid = os.fork()
        if self._pid == 0:
            _export_in_child(request_file, self._outcome_file)

    def wait(self) -> dict[str, Any]:
        """Wait for the export and return its outcome."""
        if self._outcome is None:
            _, status = os.waitpid(self._pid, 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            self._outcome = _outcome(self._outcome_file, code)
            self._tmp.cleanup()
        return self._outcome


def _outcome(outcome_file: Path, code: int) -> dict[str, Any]:
    """The export's outcome from the child's last line and its exit status."""
    lines = outcome_file.read_text(encoding="utf-8").strip().splitlines() \
        if outcome_file.is_file() else []
    try:
        outcome = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": f"the export process {exit_description(code)} without an outcome",
                "category": CRASH}
    if code != 0 and "error" not in outcome:
        return {"error": f"the export process {exit_description(code)}", "category": CRASH}
    return outcome
