"""The CUDA benchmark: the shared torch-GPU run on ``cuda:<index>``, fp32 or the precision
the request asks for when the GPU has it natively (else fp32, with the reason kept)."""

from __future__ import annotations

from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.torchgpu import bf16_native, run_benchmark
from hwaccel_cuda.detect import ENV_NAMES, FP16_MIN_CAPABILITY


def precision_problem(torch: Any, index: int, precision: str) -> str | None:
    """Why ``cuda:<index>`` cannot run ``precision`` natively, or ``None`` when it can."""
    major, minor = torch.cuda.get_device_capability(index)
    if precision == "fp16" and (major, minor) < FP16_MIN_CAPABILITY:
        return (f"cuda:{index} has compute capability {major}.{minor}; native fp16 needs "
                f"{FP16_MIN_CAPABILITY[0]}.{FP16_MIN_CAPABILITY[1]}")
    if precision == "bf16" and not bf16_native(torch, index):
        return (f"cuda:{index} (compute capability {major}.{minor}) has no native bf16: "
                "torch.cuda.is_bf16_supported(including_emulation=False) is False")
    return None


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on ``cuda:<request.hardware.index>``."""
    return run_benchmark(request, precision_problem=precision_problem, env_names=ENV_NAMES)
