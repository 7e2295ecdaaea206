"""The MPS benchmark: PyTorch eager on the Metal device, fp32 or as asked.

fp16 runs everywhere MPS does; bf16 needs macOS 14, and elsewhere the request falls back to
fp32 (the result says what ran). Floating-point inputs are cast to the model's precision.
Every timed call ends with ``torch.mps.synchronize()``, so the time is the GPU's, and the
outputs are compared with a CPU fp32 reference.
"""

from __future__ import annotations

from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.measure import benchmark_workload

DEVICE = "mps"


def resolve_precision(requested: str) -> tuple[str, Any]:
    """Return the precision that will run for ``requested`` and its torch dtype."""
    import torch

    if requested == "fp16":
        return "fp16", torch.float16
    if requested == "bf16" and torch.backends.mps.is_macos_or_newer(14, 0):
        return "bf16", torch.bfloat16
    return "fp32", torch.float32


def placement(dtype: Any) -> tuple[Any, Any]:
    """Return ``(place_model, place_inputs)`` for the MPS device in ``dtype``."""
    import torch

    def place_model(model: Any) -> Any:
        model = model.to(DEVICE)
        return model if dtype == torch.float32 else model.to(dtype)

    def place_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
        placed = {}
        for name, value in inputs.items():
            if torch.is_tensor(value):
                value = value.to(DEVICE)
                if value.is_floating_point() and dtype != torch.float32:
                    value = value.to(dtype)
            placed[name] = value
        return placed

    return place_model, place_inputs


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on the MPS device; record whether CPU fallback was on."""
    import dataclasses

    import torch

    from hwaccel_mps.detect import cpu_fallback

    precision, dtype = resolve_precision(request.settings.precision)
    place_model, place_inputs = placement(dtype)
    result = benchmark_workload(request, place_model=place_model, place_inputs=place_inputs,
                                synchronize=torch.mps.synchronize, precision=precision,
                                compare_reference=True)
    return dataclasses.replace(result, details={**result.details,
                                                "cpu_fallback": cpu_fallback()})
