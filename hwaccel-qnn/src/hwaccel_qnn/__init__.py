"""hwaccel backend ``qnn``: Qualcomm NPUs via ONNX Runtime's QNN execution provider.

Detection asks ONNX Runtime for ``QNNExecutionProvider`` and looks for the QNN backend
libraries next to it; models are exported once per input shape to fixed-shape ONNX (cached on
disk) and run with the QNN provider only, never with a silent CPU fallback. onnxruntime and
torch are imported inside the hooks only.
"""

from __future__ import annotations

from hwaccel import (
    BackendInfo,
    BenchmarkRequest,
    BenchmarkResult,
    HardwareInfo,
    TemplatePart,
    hookimpl,
)

NAME = "qnn"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``qnn``: used only when named (no place in the default order)."""
    return BackendInfo(name=NAME,
                       description="Qualcomm NPUs through onnxruntime's QNN execution provider",
                       advice="QNN needs a Snapdragon device with onnxruntime-qnn installed",
                       versions=("onnxruntime", "onnxruntime-qnn", "onnx"))


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report the QNN devices (HTP, QNN CPU backend), or why there are none."""
    from hwaccel_qnn.detect import detect_qnn

    return detect_qnn()


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the QNN snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_qnn.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=())


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model on a QNN device through a fixed-shape ONNX export."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_qnn.bench import run

    return run(request)
