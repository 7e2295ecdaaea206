"""hwaccel backend ``cpu``: the host CPU, running models with PyTorch in eager mode.

Always present: it is the reference every other backend is compared with. Detection reads
psutil and py-cpuinfo (model, cores, ISA flags, memory) and the installed torch's version and
thread count; heavy modules are imported inside the hooks only.
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
from hwaccel.kit.exposure import PYTORCH_MODULE

NAME = "cpu"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``cpu``: the last resort of every device order and the reference copy of
    every comparison; PyTorch device ``cpu``."""
    return BackendInfo(name=NAME, description="the host CPU, PyTorch eager", priority=100,
                       last_resort=True, runs_torch=True,
                       advice="The CPU backend runs PyTorch: install torch")


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report the host CPU."""
    from hwaccel_cpu.detect import detect_cpu

    return [detect_cpu()]


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the CPU snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_cpu.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=PYTORCH_MODULE)


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model on the CPU with PyTorch eager, fp32."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_cpu.bench import run

    return run(request)
