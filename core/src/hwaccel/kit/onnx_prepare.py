"""Export a benchmark's model to fixed-shape ONNX in a process of its own.

``python -m hwaccel.kit.onnx_prepare REQUEST.json`` exports (or finds in the cache) the
fixed-shape ONNX graph of the request's model at its batch size and sequence length and prints
one JSON line: ``{"path", "cache_hit", "seconds"}``, or ``{"error", "category"}`` with exit
status 1. Backends that run ONNX graphs call :func:`export_first` before measuring, so that
the exporter's memory (it traces a second copy of the graph) stays out of the measured
process's high-water mark and the export's time out of the load time; the measured process
then finds the graph in the cache. :func:`export_first` and :func:`prepare` are public kit API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.failures import CRASH, category_of
from hwaccel.kit.onnx_export import ExportedModel, export_for
from hwaccel.kit.workloads import load_workload
from hwaccel.types import BenchmarkRequest

__all__ = ["export_first", "main", "prepare"]


def prepare(request: BenchmarkRequest) -> ExportedModel:
    """Export the request's model for its settings' fixed shapes, through the disk cache."""
    workload = load_workload(request.model, request.classification)
    workload.prepare()
    return export_for(workload.load_model(), workload, request.settings.batch_size,
                      request.settings.seq_len, model_ref=request.model)


def export_first(request: BenchmarkRequest) -> dict[str, Any]:
    """Export the request's model in a child process; return its JSON outcome line.

    The outcome holds ``path`` on success, else ``error`` and ``category`` (``unsupported``
    for a model the exporter cannot take, ``crash`` when the process died).
    """
    with tempfile.TemporaryDirectory(prefix="hwaccel-onnx-") as tmp:
        job = Path(tmp) / "request.json"
        job.write_text(json.dumps(request.to_dict()), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "hwaccel.kit.onnx_prepare", str(job)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False)
    lines = proc.stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1])
    except (IndexError, ValueError):
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        outcome = {"error": f"the export process exited with {proc.returncode}: "
                            f"{errors[-1][:300] if errors else 'no output'}",
                   "category": CRASH}
    if proc.returncode != 0 and "error" not in outcome:
        outcome = {"error": f"the export process exited with {proc.returncode}",
                   "category": CRASH}
    return outcome


def main(argv: list[str]) -> int:
    """Entry point: read the request file, export, print the outcome as one JSON line."""
    request = BenchmarkRequest.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    try:
        exported = prepare(request)
    except HwaccelError as exc:  # the exporter's refusal is the backend's; the rest by origin
        print(json.dumps({"error": str(exc), "category": category_of(exc)}))
        return 1
    print(json.dumps({"path": str(exported.path), "cache_hit": exported.cache_hit,
                      "seconds": exported.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
