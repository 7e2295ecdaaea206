"""Run each benchmark job in its own process with a time limit.

The job process (:mod:`hwaccel._worker`) loads the plugins, asks the owning backend to
benchmark, adds its kernel memory high-water mark and writes the result to a file. A crash,
a hang or an out-of-memory kill becomes a failed :class:`BenchmarkResult` with its category,
never a lost run. Only the calling process writes the database.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hwaccel.types import BenchmarkRequest, BenchmarkResult


def failure(request: BenchmarkRequest, category: str, message: str) -> BenchmarkResult:
    """Return a failed result for ``request`` with an error category and a one-line message."""
    return BenchmarkResult(model=request.model, backend=request.hardware.backend,
                           device=request.hardware.device, success=False,
                           error_category=category, error=message,
                           batch_size=request.settings.batch_size,
                           seq_len=request.settings.seq_len)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def run_job(request: BenchmarkRequest, timeout_s: float) -> BenchmarkResult:
    """Benchmark ``request`` in a fresh process, killed after ``timeout_s`` seconds."""
    with tempfile.TemporaryDirectory(prefix="hwaccel-job-") as tmp:
        job_file, result_file, log_file = (Path(tmp) / n for n in ("job.json", "result.json",
                                                                   "log.txt"))
        job_file.write_text(json.dumps(request.to_dict()), encoding="utf-8")
        started = time.perf_counter()
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hwaccel._worker", str(job_file), str(result_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return failure(request, "timeout",
                               f"no result within the time limit of {timeout_s:g} s; killed")
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        wall = time.perf_counter() - started
        log_text = log_file.read_text(encoding="utf-8", errors="replace")
        if result_file.is_file():
            result = BenchmarkResult.from_dict(json.loads(result_file.read_text("utf-8")))
            return dataclasses.replace(result, wall_time_s=wall)
        if returncode == -signal.SIGKILL:
            return failure(request, "killed", "job process was killed (SIGKILL: out of memory?)")
        if returncode < 0:
            name = signal.Signals(-returncode).name
            return failure(request, "crash", f"job process died of {name}: {_last_line(log_text)}")
        return failure(request, "crash",
                       f"job process exited with {returncode}: {_last_line(log_text)}")

