"""hwaccel backend ``ortcpu``: ONNX Runtime's CPU execution provider, on converted graphs.

The seventh backend, built only from the plugin API (``hwaccel``) and ``hwaccel.kit``: the
model is exported to a fixed-shape ONNX graph (:mod:`hwaccel.kit.onnx_prepare`, cached) and
run by an ONNX Runtime session on ``CPUExecutionProvider`` (:mod:`hwaccel.kit.onnx_session`).
onnxruntime and torch are imported inside the hooks only.
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

NAME = "ortcpu"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare the backend: used only when named, runs converted graphs."""
    return BackendInfo(name=NAME, description="ONNX Runtime's CPU provider on fixed-shape "
                                              "ONNX exports", priority=None,
                       advice="pip install onnxruntime", versions=("onnxruntime", "onnx"))


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report ONNX Runtime's CPU provider, or why it is absent."""
    from hwaccel_ortcpu.detect import detect

    return [detect()]


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_ortcpu.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=())


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model's fixed-shape ONNX export on ONNX Runtime's CPU provider."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_ortcpu.bench import run

    return run(request)
