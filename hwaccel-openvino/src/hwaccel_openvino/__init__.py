"""hwaccel backend ``openvino``: Intel OpenVINO (CPU, integrated GPU, NPU) via
openvino.convert_model.

Detection lists every device of ``openvino.Core().available_devices``. Models are converted
from PyTorch with ``openvino.convert_model`` (ONNX export as the fallback), cached on disk
as IR (with weights compressed by NNCF for int8 and int4), compiled in the precision asked
for (or the device's own, ``native``) and called like the PyTorch model through
:class:`OpenVINOModel`.
Importing this module imports neither openvino nor torch; the hooks import them.
"""

from __future__ import annotations

from typing import Any

from hwaccel import (
    BackendInfo,
    BenchmarkRequest,
    BenchmarkResult,
    HardwareInfo,
    TemplatePart,
    hookimpl,
)
from hwaccel.kit.exposure import DYNAMIC_SHAPES, GENERATE

NAME = "openvino"
# A compiled graph per call shape (converted on first use) and a decoding loop over it;
# no torch module internals and no cache outputs.
EXPOSES = (GENERATE, DYNAMIC_SHAPES)
__all__ = ["NAME", "ConversionError", "OpenVINOModel", "place_for_workload"]


def __getattr__(name: str) -> Any:
    """The conversion API, imported on first use: ``OpenVINOModel``, ``place_for_workload``,
    ``ConversionError``."""
    if name in ("OpenVINOModel", "place_for_workload", "ConversionError"):
        from hwaccel_openvino import convert

        return getattr(convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``openvino``: after the PyTorch GPUs in the default order; it runs converted
    graphs, so its device strings (``openvino:GPU.0``) are not ``torch.device`` strings."""
    return BackendInfo(name=NAME, description="Intel CPUs, GPUs and NPUs through OpenVINO",
                       priority=40,
                       advice="OpenVINO needs the openvino package and an Intel CPU, GPU or NPU",
                       versions=("openvino", "onnx"))


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report each OpenVINO device, or why OpenVINO is unavailable."""
    from hwaccel_openvino.detect import detect_openvino

    return detect_openvino()


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the OpenVINO snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_openvino.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=EXPOSES)


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model converted to OpenVINO on the request's device, against PyTorch."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_openvino.bench import run

    return run(request)
