"""Torch-GPU helpers shared by the ``cuda`` and ``rocm`` backends.

ROCm builds of torch answer through the same ``torch.cuda`` API (device strings are
``cuda:<i>`` there too), so reading device properties and memory, matching a torch device
to its management-library record (NVML, amdsmi) by PCI address, placing a model and its
inputs, the benchmark itself and most generated-test snippets are the same for both.

It lives in the core because ``pip install hwaccel[rocm]`` must not install the cuda
backend, so neither distribution may depend on the other.

Importing this module is cheap: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.types import NATIVE_PRECISION

#: precision name -> torch dtype attribute
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

_BDF = re.compile(r"^([0-9a-fA-F]+):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.[0-7])?$")


# -- detection -------------------------------------------------------------------------------


def import_torch() -> tuple[Any | None, str | None]:
    """Return ``(torch, None)``, or ``(None, reason)`` when torch is missing or broken."""
    try:
        import torch
    except ImportError as exc:  # ModuleNotFoundError too
        if exc.name == "torch":
            return None, "torch is not installed"
        return None, f"torch failed to import: {first_line(exc)}"
    except OSError as exc:  # a missing shared library of an accelerator build
        return None, f"torch failed to import: {first_line(exc)}"
    return torch, None


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an exception's message (or of a string)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, BaseException) and not line:
        return type(exc).__name__
    return line


def visible_devices(names: Iterable[str]) -> dict[str, str]:
    """The device-visibility variables among ``names`` that are set, with their values."""
    return {name: os.environ[name] for name in names if name in os.environ}


def describe_env(env: dict[str, str]) -> str:
    """``" (CUDA_VISIBLE_DEVICES='1')"`` for set variables, ``""`` when none is set."""
    if not env:
        return ""
    return " (" + ", ".join(f"{name}={value!r}" for name, value in env.items()) + ")"


def init_error(torch: Any) -> str | None:
    """Why ``torch.cuda`` cannot initialise (the runtime's own words), or ``None``.

    ``torch.cuda.is_available()`` only says False; ``torch.cuda.init()`` raises with the
    driver's message ("Found no NVIDIA driver on your system", "CUDA driver version is
    insufficient", "No HIP GPUs are available").
    """
    try:
        torch.cuda.init()
    except Exception as exc:  # noqa: BLE001 - any runtime failure is the reason
        return first_line(exc)
    return None


def parse_bdf(text: Any) -> tuple[int, int, int] | None:
    """``(domain, bus, device)`` of a PCI address such as ``0000:c1:00.0`` (NVML's
    ``00000000:3B:00.0`` too), or ``None`` when it is not one."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _BDF.match(str(text).strip()) if text is not None else None
    if not match:
        return None
    return tuple(int(part, 16) for part in match.groups())  # type: ignore[return-value]


def pci_key(props: Any) -> tuple[int, int, int] | None:
    """``(domain, bus, device)`` from torch device properties, when torch reports them."""
    parts = [getattr(props, name, None) for name in ("pci_domain_id", "pci_bus_id",
                                                      "pci_device_id")]
    if any(not isinstance(part, int) for part in parts):
        return None
    return parts[0], parts[1], parts[2]


def format_pci(key: tuple[int, int, int] | None) -> str | None:
    """``0000:c1:00.0`` for a ``(domain, bus, device)`` key."""
    if key is None:
        return None
    return f"{key[0]:04x}:{key[1]:02x}:{key[2]:02x}.0"


def normal_uuid(value: Any) -> str | None:
    """A device UUID without NVML's ``GPU-`` prefix, lower case; ``None`` when empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text or None


def device_memory(torch: Any, index: int, props_total: int | None
                  ) -> tuple[int | None, int | None, str | None]:
    """``(total, free, note)`` of a device from ``torch.cuda.mem_get_info``.

    When that call fails (an exclusive-process device busy elsewhere, an out-of-memory
    context), total comes from the device properties, free is ``None`` and ``note`` says why.
    """
    try:
        free, total = torch.cuda.mem_get_info(index)
    except Exception as exc:  # noqa: BLE001 - reported, detection goes on
        return props_total, None, f"torch.cuda.mem_get_info({index}) failed: {first_line(exc)}"
    return int(total), int(free), None


def bf16_native(torch: Any, index: int) -> bool:
    """Whether device ``index`` runs bf16 natively, per ``torch.cuda.is_bf16_supported``.

    torch answers for the current device, so the device is made current for the call;
    emulated bf16 (slow, pre-Ampere NVIDIA GPUs) does not count.
    """
    with torch.cuda.device(index):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.4 has no including_emulation
            return bool(torch.cuda.is_bf16_supported())


def torch_device_fields(torch: Any, index: int) -> dict[str, Any]:
    """What torch says of device ``index``: name, memory, compute units, PCI address, UUID."""
    props = torch.cuda.get_device_properties(index)
    total, free, note = device_memory(torch, index, getattr(props, "total_memory", None))
    key = pci_key(props)
    return {"name": str(props.name), "memory_total_bytes": total, "memory_free_bytes": free,
            "memory_note": note, "multiprocessor_count": getattr(props, "multi_processor_count",
                                                                 None),
            "pci": key, "pci_bus_id": format_pci(key),
            "uuid": normal_uuid(getattr(props, "uuid", None)), "props": props}


def match_record(records: list[dict[str, Any]], pci: tuple[int, int, int] | None,
                 uuid: str | None) -> dict[str, Any] | None:
    """The management-library record (NVML, amdsmi) of a torch device: same PCI address,
    else same UUID. Indices are never matched, since visibility variables and device order
    renumber torch's devices but not the library's."""
    for record in records:
        if pci is not None and record.get("pci") == pci:
            return record
    for record in records:
        if uuid is not None and record.get("uuid") == uuid:
            return record
    return None


# -- benchmark -------------------------------------------------------------------------------


def check_index(torch: Any, index: int, env_names: Iterable[str]) -> str | None:
    """Why ``cuda:<index>`` cannot be used in this process, or ``None`` when it can."""
    if not torch.cuda.is_available():
        reason = init_error(torch) or "no device is visible"
        return f"torch.cuda.is_available() is False in the job process: {reason}"
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        return (f"device index {index} is out of range: torch.cuda.device_count() is {count}"
                f"{describe_env(visible_devices(env_names))}; the detection may be stale "
                "(run `hwaccel detect --refresh`)")
    return None


def choose_precision(requested: str, problem: str | None) -> tuple[str, str | None]:
    """``(precision that runs, note)``: fall back to fp32 when ``problem`` says why not.

    ``native`` (the device's own default) is fp32: PyTorch runs a module in the dtype its
    weights are loaded in, fp32, unless told otherwise.
    """
    if requested == NATIVE_PRECISION:
        return "fp32", "native asked: PyTorch's default dtype is fp32"
    if requested not in DTYPES:
        return "fp32", f"unknown precision {requested!r}; ran fp32"
    if requested != "fp32" and problem:
        return "fp32", f"{requested} requested but {problem}; ran fp32"
    return requested, None


def move_inputs(value: Any, device: Any, dtype: Any) -> Any:
    """Move tensors (in dicts, lists and tuples too) to ``device``; floating ones take
    ``dtype``, integer ones (token ids, masks) keep theirs; other values stay as they are."""
    import torch

    if torch.is_tensor(value):
        if value.is_floating_point():
            return value.to(device=device, dtype=dtype)
        return value.to(device=device)
    if isinstance(value, dict):
        return {key: move_inputs(item, device, dtype) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(move_inputs(item, device, dtype) for item in value)
    return value


def place_model(model: Any, device: Any, dtype: Any) -> Any:
    """Move a model (an ``nn.Module`` or a diffusers pipeline) to ``device`` in ``dtype``."""
    import torch

    model = model.to(device)
    if dtype != torch.float32:
        model = model.to(dtype)
    return model


def annotate(result: BenchmarkResult, *, device_peak_bytes: int | None,
             details: dict[str, Any]) -> BenchmarkResult:
    """Record the device's peak memory and the run's details on the result."""
    return dataclasses.replace(
        result, details={**result.details, **details},
        device_peak_mb=device_peak_bytes / 2**20 if device_peak_bytes is not None else None)


class CudaEventTimer:
    """Times one call with a pair of ``torch.cuda.Event`` on the current stream.

    The events measure the device's time from the call's first queued work to its end,
    without the host's clock; on ROCm builds torch maps them to HIP events.
    """

    name = "cuda-events"

    def __init__(self, torch: Any):
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        """Record the start event."""
        self._start.record()

    def stop(self) -> float:
        """Record the end event, wait for it, and return the milliseconds between."""
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


def run_benchmark(request: BenchmarkRequest, *,
                  precision_problem: Callable[[Any, int, str], str | None],
                  env_names: Iterable[str]) -> BenchmarkResult:
    """Benchmark ``request`` on ``cuda:<request.hardware.index>`` (CUDA or ROCm).

    The device index is validated against ``torch.cuda.device_count()``; the requested
    precision runs when ``precision_problem(torch, index, precision)`` finds nothing
    against it, else fp32 with the reason kept. The peak-memory counters are reset before
    the job and ``torch.cuda.max_memory_allocated`` read after it; calls are timed with
    CUDA events; outputs are compared with a CPU fp32 reference (``max_abs_diff``).
    """
    import torch

    from hwaccel.kit.failures import failure
    from hwaccel.kit.measure import benchmark_workload

    index = request.hardware.index
    problem = check_index(torch, index, env_names)
    if problem:
        return failure(request, "unavailable", problem)
    requested = request.settings.precision
    precision, note = choose_precision(
        requested, precision_problem(torch, index, requested) if requested != "fp32" else None)
    device = torch.device(request.hardware.torch_device or request.hardware.device)
    dtype = getattr(torch, DTYPES[precision])
    if request.settings.threads:
        torch.set_num_threads(request.settings.threads)
    torch.cuda.set_device(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        result = benchmark_workload(
            request, place_model=lambda model: place_model(model, device, dtype),
            place_inputs=lambda inputs: move_inputs(inputs, device, dtype),
            synchronize=lambda: torch.cuda.synchronize(device), precision=precision,
            threads=torch.get_num_threads(), compare_reference=True,
            timer=CudaEventTimer(torch))
    except torch.cuda.OutOfMemoryError as exc:
        return failure(request, "out-of-memory", f"{device}: {first_line(exc)}")
    peak = int(torch.cuda.max_memory_allocated(device))
    details = {"device_peak_allocated_bytes": peak,
               "device_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
               "requested_precision": requested, "precision_note": note,
               "device_name": torch.cuda.get_device_name(device),
               "visible_devices": visible_devices(env_names)}
    return annotate(result, device_peak_bytes=peak, details=details)


# -- generated tests -------------------------------------------------------------------------

#: the slots a torch-GPU backend fills the same way; each backend adds its own
#: "availability" (``DEVICE`` and a real ``unavailable_reason()``).
SHARED_SNIPPETS = {
    "imports": "import torch",
    "placement": '''\
def place_model(model):
    """Move the model to the GPU in fp32, the precision of the CPU reference."""
    return model.to(DEVICE)


def place_inputs(inputs):
    """Move the tensor inputs to the GPU; other values stay as they are."""
    return {name: value.to(DEVICE) if torch.is_tensor(value) else value
            for name, value in inputs.items()}''',
    "synchronize": '''\
def synchronize() -> None:
    """Wait for the kernels queued on the GPU, so outputs are complete."""
    torch.cuda.synchronize(DEVICE)''',
    "cleanup": '''\
def release(model) -> None:
    """Move the model off the GPU and give torch's cached blocks back to the driver."""
    model.cpu()
    torch.cuda.empty_cache()''',
    "tolerance": '''\
# GPU fp32 kernels sum in another order than the CPU (~1e-6 relative), and TF32 (a
# 10-bit mantissa: cuDNN convolutions use it by default on NVIDIA Ampere and newer,
# matmuls when enabled; XF32 on AMD MI300 when enabled) adds ~1e-3 relative through a
# few layers. A wrong kernel misses by about the size of the outputs themselves.
ATOL = 1e-3
RTOL = 1e-2''',
}
