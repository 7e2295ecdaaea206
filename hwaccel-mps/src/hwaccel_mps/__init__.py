"""hwaccel backend ``mps``: Apple silicon GPUs via torch's Metal Performance Shaders backend.

Detection reads ``torch.backends.mps``, the macOS version, the chip name (sysctl) and the
unified memory (psutil), and reports whether ``PYTORCH_ENABLE_MPS_FALLBACK`` lets operators
fall back to the CPU. torch is imported inside the hooks only.
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

NAME = "mps"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``mps``: after the discrete GPUs in the default order, PyTorch device ``mps``."""
    return BackendInfo(name=NAME, description="Apple GPUs through torch's Metal backend",
                       priority=30, runs_torch=True, advice="MPS needs macOS on Apple silicon")


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report the MPS device, or why there is none."""
    from hwaccel_mps.detect import detect_mps

    return [detect_mps()]


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the MPS snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_mps.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=PYTORCH_MODULE)


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model on the MPS device with PyTorch eager (fp32, fp16, bf16)."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_mps.bench import run

    return run(request)
