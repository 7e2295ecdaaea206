"""The ROCm benchmark: the shared torch-GPU run (:mod:`hwaccel.kit.torchgpu`) on
``cuda:<index>``, which is how ROCm builds of torch name AMD GPUs."""

from __future__ import annotations

from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.torchgpu import bf16_native, run_benchmark
from hwaccel_rocm.detect import ENV_NAMES


def precision_problem(torch: Any, index: int, precision: str) -> str | None:
    """Why HIP device ``index`` cannot run ``precision``, or ``None`` when it can.

    fp16 runs on every GPU ROCm supports; bf16 is what ``torch.cuda.is_bf16_supported``
    says for the device.
    """
    if precision == "bf16" and not bf16_native(torch, index):
        return f"HIP device {index}: torch.cuda.is_bf16_supported() is False"
    return None


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on the AMD GPU ``cuda:<request.hardware.index>``."""
    return run_benchmark(request, precision_problem=precision_problem, env_names=ENV_NAMES)
