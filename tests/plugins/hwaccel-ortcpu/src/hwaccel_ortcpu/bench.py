"""The benchmark: export first (in its own process), then measure the session by the kit's
method, compared with the CPU PyTorch reference."""

from __future__ import annotations

from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.failures import AttributedError, failure
from hwaccel.kit.measure import benchmark_workload
from hwaccel.kit.onnx_prepare import export_first
from hwaccel.kit.onnx_session import OnnxModel, load_onnx
from hwaccel.kit.workloads import load_workload
from hwaccel_ortcpu.detect import PROVIDER


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload as an ONNX graph on ONNX Runtime's CPU provider."""
    exported = export_first(request)
    if "error" in exported:  # attributed by the export process
        return failure(request, exported["category"], exported["error"])
    settings = request.settings
    workload = load_workload(request.model, request.classification)
    workload.prepare()

    def place_model(model: Any) -> OnnxModel:
        return load_onnx(model, workload, settings.batch_size, settings.seq_len,
                         model_ref=request.model, providers=[PROVIDER],
                         threads=settings.threads, runtime="the ONNX Runtime CPU model")

    try:
        return benchmark_workload(request, place_model=place_model,
                                  place_inputs=lambda inputs: inputs,
                                  threads=settings.threads, compare_reference=True)
    except AttributedError as exc:  # a failure whose owner is known: recorded as such
        return failure(request, exc.category, exc.message)
