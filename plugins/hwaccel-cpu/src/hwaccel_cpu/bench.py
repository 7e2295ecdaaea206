"""The CPU benchmark: PyTorch eager, fp32, with a deliberate thread count."""

from __future__ import annotations

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.measure import benchmark_workload


def default_threads() -> int:
    """Return the physical core count (torch's threads collapse when oversubscribed)."""
    import psutil

    return psutil.cpu_count(logical=False) or 1


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on the CPU."""
    import torch

    threads = request.settings.threads or default_threads()
    torch.set_num_threads(threads)
    return benchmark_workload(request, place_model=lambda model: model,
                              place_inputs=lambda inputs: inputs, threads=threads)
