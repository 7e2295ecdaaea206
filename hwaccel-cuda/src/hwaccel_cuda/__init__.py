"""hwaccel backend ``cuda``: NVIDIA GPUs via torch.cuda, with NVML when nvidia-ml-py is installed.

Detection asks torch (a CUDA build, ``torch.cuda.is_available()``, device properties,
``torch.cuda.mem_get_info``) and NVML for the driver's view; a ROCm build of torch, whose
``torch.cuda`` answers for AMD GPUs, is left to the ``rocm`` backend. Benchmarks run on
``cuda:<index>`` through the core's shared measurement. torch and pynvml are imported inside
the hooks only. :mod:`hwaccel.kit.torchgpu` holds the torch-GPU code shared with the
``rocm`` backend (which carries the same file; neither distribution depends on the other).
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

NAME = "cuda"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``cuda``: first in the default order, PyTorch devices ``cuda:N``."""
    return BackendInfo(name=NAME, description="NVIDIA GPUs through torch.cuda", priority=10,
                       runs_torch=True,
                       advice="CUDA needs an NVIDIA GPU with its driver and a CUDA build of "
                              "PyTorch")


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report every visible NVIDIA GPU, or why there is none."""
    from hwaccel_cuda.detect import detect_cuda

    return detect_cuda()


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the CUDA snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_cuda.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=PYTORCH_MODULE)


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model on ``cuda:<index>`` of the detected device."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_cuda.bench import run

    return run(request)
