"""Example hwaccel backend ``cpu1``: PyTorch eager on a single CPU thread.

A complete third-party backend in one module: it detects its device, gives generated tests
their device snippets, and benchmarks with the core's shared measurement method. It imports
nothing heavy at module level, so ``hwaccel list-plugins`` stays fast.
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

NAME = "cpu1"
SNIPPETS = {
    "imports": "import torch",
    "availability": (
        'DEVICE = "cpu"\n\n\n'
        "def unavailable_reason():\n"
        '    """One CPU thread is always there."""\n'
        "    torch.set_num_threads(1)\n"
        "    return None"),
    "placement": (
        "def place_model(model):\n    return model\n\n\n"
        "def place_inputs(inputs):\n    return inputs"),
    "synchronize": "def synchronize():\n    pass",
    "cleanup": "def release(model):\n    del model",
    "tolerance": "ATOL = 1e-5\nRTOL = 1e-4",
}


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare the backend; without a priority it is used only when named."""
    return BackendInfo(name=NAME, description="PyTorch eager on one host CPU thread")


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """One device: a single thread of the host CPU."""
    import platform

    import psutil

    memory = psutil.virtual_memory()
    return [HardwareInfo(backend=NAME, device="cpu1", name=f"{platform.machine()} x1 thread",
                         available=True, memory_total_bytes=memory.total,
                         memory_available_bytes=memory.available, capabilities=("fp32",))]


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Snippets for every slot the pipelines' templates require."""
    if backend != NAME:
        return None
    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS)


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Measure with one thread; answer only for this backend."""
    if request.hardware.backend != NAME:
        return None
    import torch

    from hwaccel.kit.measure import benchmark_workload

    torch.set_num_threads(1)
    return benchmark_workload(request, place_model=lambda m: m, place_inputs=lambda i: i,
                              threads=1)
