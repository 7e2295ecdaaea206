"""The job process of :mod:`hwaccel.runner`: ``python -m hwaccel._worker JOB.json RESULT.json``.

It benchmarks one request through the ``hwaccel_benchmark`` hook and writes the result,
stamped by the core with the kernel's memory high-water mark of this process, the load
average at the start, library versions and the hardware fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from hwaccel.jsoncache import write
from hwaccel.measure import process_memory_mb
from hwaccel.provenance import fingerprint, library_versions
from hwaccel.types import BenchmarkRequest, BenchmarkResult


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Benchmark ``request`` in this process and stamp the result."""
    from hwaccel.plugins import load
    from hwaccel.runner import failure

    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    plugins = load()
    result, errors = plugins.call_first("hwaccel_benchmark", request=request)
    if result is None:
        owner = [e for e in errors if e.plugin == request.hardware.plugin] or errors
        if owner:
            result = failure(request, "error", owner[0].message)
        else:
            result = failure(request, "no-backend",
                             f"no loaded plugin benchmarks backend {request.hardware.backend!r}")
    return dataclasses.replace(
        result, peak_rss_mb=process_memory_mb("VmHWM"), load_avg=load_avg,
        versions={**library_versions((result.distribution,
                                      request.classification.distribution)),
                  **result.versions},
        hardware_fingerprint=fingerprint(request.hardware))


def main(argv: list[str]) -> int:
    """Entry point: read the job file, write the result file."""
    job_file, result_file = Path(argv[0]), Path(argv[1])
    request = BenchmarkRequest.from_dict(json.loads(job_file.read_text(encoding="utf-8")))
    write(result_file, run(request).to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
