"""The QNN benchmark: the workload's model exported to a fixed-shape ONNX graph (cached) and
run by ONNX Runtime's QNN provider, measured by the core's shared method.

The export runs first, in a process of its own (:mod:`hwaccel_qnn.prepare`), so neither its
time nor its memory is counted; load time then covers loading the torch model, recording the
workload's call on the CPU, finding the export in the cache and creating the QNN session,
which compiles the graph for the device. The graph is fixed to the request's batch size and
sequence length. An fp32 graph runs in fp16 on the HTP (QNN's default there) and in fp32 on
QNN's CPU backend; the result records which.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.measure import benchmark_workload
from hwaccel.runner import failure
from hwaccel.workloads import load_workload
from hwaccel_qnn.export import ExportError, QnnError
from hwaccel_qnn.runtime import QnnModel, QnnSessionError, load_on_qnn


def export_first(request: BenchmarkRequest) -> dict[str, Any]:
    """Export the request's model in a child process; return its JSON outcome line."""
    with tempfile.TemporaryDirectory(prefix="hwaccel-qnn-") as tmp:
        job = Path(tmp) / "request.json"
        job.write_text(json.dumps(request.to_dict()), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "hwaccel_qnn.prepare", str(job)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False)
    lines = proc.stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1])
    except (IndexError, ValueError):
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        outcome = {"error": f"the export process exited with {proc.returncode}: "
                            f"{errors[-1][:300] if errors else 'no output'}",
                   "category": "crash"}
    if proc.returncode != 0 and "error" not in outcome:
        outcome = {"error": f"the export process exited with {proc.returncode}",
                   "category": "crash"}
    return outcome


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on its QNN device, compared with the CPU reference."""
    exported = export_first(request)
    if "error" in exported:
        return failure(request, exported.get("category", "error"), exported["error"])
    settings = request.settings
    workload = load_workload(request.model, request.classification)
    workload.prepare()

    def place_model(model: Any) -> QnnModel:
        return load_on_qnn(model, workload, settings.batch_size, settings.seq_len,
                           model_ref=request.model, hardware=request.hardware)

    try:
        return benchmark_workload(request, place_model=place_model,
                                  place_inputs=lambda inputs: inputs,
                                  precision=str(request.hardware.details.get(
                                      "fp32_runs_as", "fp32")),
                                  compare_reference=True)
    except ExportError as exc:
        return failure(request, "unsupported", str(exc))
    except QnnSessionError as exc:
        return failure(request, "unavailable", str(exc))
    except QnnError as exc:
        return failure(request, "error", str(exc))
