"""The QNN benchmark: the workload's model exported to a fixed-shape ONNX graph (cached) and
run by ONNX Runtime's QNN provider, measured by the core's shared method.

The export runs first, in a process of its own (:mod:`hwaccel.kit.onnx_prepare`), so neither its
time nor its memory is counted; load time then covers loading the torch model, recording the
workload's call on the CPU, finding the export in the cache and creating the QNN session,
which compiles the graph for the device. The graph is fixed to the request's batch size and
sequence length. An fp32 graph runs in fp16 on the HTP (QNN's default there) and in fp32 on
QNN's CPU backend; ``--precision int8`` runs its QDQ quantization (:mod:`hwaccel_qnn.quantize`,
quantized inside the load time) on a device that declares int8. The result records the
precision that ran, what was asked, how it was quantized, and what its latency is the latency of
(``details.latency_of``: Qualcomm's x86_64 simulator of the HTP is not an NPU). An exporter
or a QNN session that refuses the graph is the backend's failure (:mod:`hwaccel.kit.failures`).

QNN does not generate: the HTP compiles a graph for one fixed input shape, so a decoding loop
would need a graph per sequence length, or a decoder exported with a fixed-size key/value
cache as inputs and outputs, which this backend does not build. A generation request
(``settings.new_tokens > 0``) is recorded as ``unsupported`` with :data:`NO_GENERATION`.
"""

from __future__ import annotations

from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.failures import AttributedError, failure
from hwaccel.kit.measure import benchmark_workload
from hwaccel.kit.onnx_prepare import export_first
from hwaccel.kit.workloads import load_workload
from hwaccel_qnn.runtime import QnnModel, load_on_qnn, run_precision

NO_GENERATION = ("QNN runs fixed-shape graphs: generation needs a graph per sequence length "
                 "or a fixed-size key/value cache export, which the qnn backend does not build")


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on its QNN device, compared with the CPU reference."""
    if request.settings.new_tokens > 0:
        return failure(request, "unsupported", NO_GENERATION)
    exported = export_first(request)
    if "error" in exported:  # attributed by the export process (the exporter's: backend)
        return failure(request, exported["category"], exported["error"])
    settings = request.settings
    workload = load_workload(request.model, request.classification)
    workload.prepare()
    placed: list[QnnModel] = []

    def place_model(model: Any) -> QnnModel:
        placed.append(load_on_qnn(model, workload, settings.batch_size, settings.seq_len,
                                  model_ref=request.model, hardware=request.hardware,
                                  precision=settings.precision))
        return placed[-1]

    try:
        result = benchmark_workload(request, place_model=place_model,
                                    place_inputs=lambda inputs: inputs,
                                    precision=run_precision(request.hardware,
                                                            settings.precision),
                                    compare_reference=True)
    except AttributedError as exc:  # a failure whose owner is known: recorded as such
        return failure(request, exc.category, exc.message)
    result.details.update(latency_of=latency_of(request.hardware),
                          latency_simulated=bool(request.hardware.details.get("simulator")),
                          requested_precision=settings.precision)
    if placed and placed[-1].quantization:
        result.details["quantization"] = placed[-1].quantization
    return result


def latency_of(hardware: Any) -> str:
    """What the measured latency is the latency of: the NPU, or Qualcomm's simulator of it
    (whose compiler and operators decide compatibility and accuracy as on a device)."""
    if hardware.details.get("simulator"):
        return (f"Qualcomm's HTP simulator on this {hardware.details.get('machine', 'host')} "
                f"CPU (SoC model {hardware.details.get('soc_model')}), not an NPU")
    return str(hardware.name)
