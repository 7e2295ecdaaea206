"""hwaccel backend ``rocm``: AMD GPUs via HIP builds of torch, with amdsmi when installed.

Detection asks torch (a ROCm build sets ``torch.version.hip`` and answers for AMD GPUs
through ``torch.cuda``: device properties with ``gcnArchName``, ``torch.cuda.mem_get_info``)
and amdsmi for the driver's view. Benchmarks run on ``cuda:<index>`` through the core's
shared measurement. The torch-GPU code shared with the ``cuda`` backend is
:mod:`hwaccel.kit.torchgpu` (the same file as ``hwaccel_cuda.torchgpu``; neither
distribution depends on the other). torch and amdsmi are imported inside the hooks only.
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

NAME = "rocm"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``rocm``: after CUDA in the default order, PyTorch devices ``cuda:N``."""
    return BackendInfo(name=NAME, description="AMD GPUs through a ROCm (HIP) build of torch",
                       priority=20, runs_torch=True,
                       advice="ROCm needs an AMD GPU with the ROCm stack and a ROCm build of "
                              "PyTorch")


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report every visible AMD GPU, or why there is none."""
    from hwaccel_rocm.detect import detect_rocm

    return detect_rocm()


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the ROCm snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_rocm.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=PYTORCH_MODULE)


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model on the AMD GPU ``cuda:<index>`` of the detected device."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_rocm.bench import run

    return run(request)
