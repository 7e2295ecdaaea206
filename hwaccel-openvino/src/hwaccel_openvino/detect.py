"""OpenVINO detection: one record per device of ``openvino.Core().available_devices``.

Each device is read through ``Core.get_property``: its full name, its optimisation
capabilities (``FP32``, ``FP16``, ``BF16``, ``INT8``, ... reported in lowercase), its type and
architecture and, for GPUs, ``GPU_DEVICE_TOTAL_MEM_SIZE``. CPUs and GPUs also declare ``int8`` and
``int4``: their plugins run graphs whose weights NNCF compressed to u8 or u4/i4
(:mod:`hwaccel_openvino.weights`), decompressing them inside their kernels, whatever the
device's OPTIMIZATION_CAPABILITIES say about int8 arithmetic (a CPU reports ``INT8``
already). The device is told by its id (``CPU``, ``GPU.0``), not its ``DEVICE_TYPE``, which
reads ``integrated`` for both a CPU and an integrated GPU. A property the device does not list
in ``SUPPORTED_PROPERTIES`` (or that raises when read) is left out, never an error. When
openvino is missing, or its ``Core`` cannot start, or it finds no device, one unavailable
record says why.
"""

from __future__ import annotations

from typing import Any

from hwaccel import HardwareInfo

NAME = "openvino"
# device property -> key in HardwareInfo.details (read only where the device supports it)
DETAIL_PROPERTIES = {
    "DEVICE_TYPE": "device_type",
    "DEVICE_ARCHITECTURE": "architecture",
    "DEVICE_GOPS": "gops",
    "RANGE_FOR_STREAMS": "range_for_streams",
    "RANGE_FOR_ASYNC_INFER_REQUESTS": "range_for_async_infer_requests",
    "INFERENCE_PRECISION_HINT": "default_inference_precision",
    "GPU_EXECUTION_UNITS_COUNT": "gpu_execution_units",
    "GPU_UARCH_VERSION": "gpu_uarch_version",
    "DEVICE_UUID": "uuid",
}


def unavailable(reason: str) -> HardwareInfo:
    """The one record of an absent OpenVINO backend, with ``reason``."""
    return HardwareInfo(backend=NAME, device=NAME, name="OpenVINO", available=False,
                        reason=reason)


def read_property(core: Any, device: str, name: str, supported: set[str]) -> Any:
    """Return ``name`` of ``device``, or ``None`` where the device does not support it."""
    if supported and name not in supported:
        return None
    try:
        return core.get_property(device, name)
    except Exception:  # noqa: BLE001 - an unsupported property is skipped, not an error
        return None


def _jsonable(value: Any) -> Any:
    """Property values as JSON-safe values (enums and OpenVINO types become strings)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if callable(getattr(value, "get_type_name", None)):
        return str(value.get_type_name())  # an element type: f32, bf16, f16
    text = str(value)
    return text.rsplit(".", 1)[-1].lower() if text.startswith("Type.") else text


# OpenVINO's AUTO device order, which the default choice follows: a GPU, then the CPU, then
# an NPU (AUTO leaves NPUs out of its default list); any other kind after them.
RANKS = {"GPU": 0, "CPU": 1, "NPU": 2}
# device kinds whose plugins run NNCF-compressed weights (u8, u4/i4), and those precisions
WEIGHT_COMPRESSION_DEVICES = ("CPU", "GPU")
COMPRESSED_WEIGHTS = ("int8", "int4")


def device_kind(device: str) -> str:
    """The device id without its index: ``GPU.1`` -> ``GPU``."""
    return device.split(".", 1)[0].upper()


def declared_capabilities(device: str, reported: Any) -> tuple[str, ...]:
    """The device's OPTIMIZATION_CAPABILITIES in lowercase, plus ``int8`` and ``int4`` on a
    device whose plugin runs compressed weights (:data:`WEIGHT_COMPRESSION_DEVICES`)."""
    capabilities = [str(c).lower() for c in reported]
    if device_kind(device) in WEIGHT_COMPRESSION_DEVICES:
        capabilities += [c for c in COMPRESSED_WEIGHTS if c not in capabilities]
    return tuple(capabilities)


def device_rank(device: str) -> int:
    """Where a device id (``GPU.1``, ``CPU``, ``NPU``) comes in OpenVINO's AUTO order."""
    return RANKS.get(device_kind(device), len(RANKS))


def device_index(device: str) -> int:
    """The number after the dot of a device id (``GPU.1`` -> 1), else 0."""
    _, _, suffix = device.partition(".")
    return int(suffix) if suffix.isdigit() else 0


def describe_device(core: Any, device: str, version: str) -> HardwareInfo:
    """Return one available device with its name, capabilities, memory and details."""
    supported = read_property(core, device, "SUPPORTED_PROPERTIES", set())
    supported = {str(p) for p in supported} if supported else set()
    name = read_property(core, device, "FULL_DEVICE_NAME", supported) or device
    capabilities = read_property(core, device, "OPTIMIZATION_CAPABILITIES", supported) or ()
    details: dict[str, Any] = {"openvino": version, "device_id": device}
    for prop, key in DETAIL_PROPERTIES.items():
        value = read_property(core, device, prop, supported)
        if value is not None:
            details[key] = _jsonable(value)
    memory_total = memory_available = None
    gpu_memory = read_property(core, device, "GPU_DEVICE_TOTAL_MEM_SIZE", supported)
    if gpu_memory:
        memory_total = int(gpu_memory)
        details["memory_source"] = "GPU_DEVICE_TOTAL_MEM_SIZE"
    elif device.split(".")[0] == "CPU":
        import psutil

        memory = psutil.virtual_memory()
        memory_total, memory_available = memory.total, memory.available
        details["memory_source"] = "host memory (psutil)"
    return HardwareInfo(backend=NAME, device=device, name=str(name), available=True,
                        device_string=f"{NAME}:{device}", rank=device_rank(device),
                        index=device_index(device), memory_total_bytes=memory_total,
                        memory_available_bytes=memory_available,
                        capabilities=declared_capabilities(device, capabilities),
                        details=details,
                        compute_resource="host-cpu" if device.split(".")[0] == "CPU"
                        else f"openvino:{device}",
                        converted_weights="fp32")  # the IR cache is saved uncompressed


def detect_openvino() -> list[HardwareInfo]:
    """Return one record per OpenVINO device, or one unavailable record with the reason."""
    try:
        import openvino
    except ImportError as exc:
        return [unavailable(f"openvino is not installed ({exc})")]
    version = str(getattr(openvino, "__version__", "unknown"))
    try:
        core = openvino.Core()
        devices = list(core.available_devices)
    except Exception as exc:  # noqa: BLE001 - the runtime's own message is the reason
        text = " ".join(str(exc).split())[:300]
        return [unavailable(f"openvino {version}: Core() failed: {text}")]
    if not devices:
        return [unavailable(f"openvino {version} found no device "
                            "(Core().available_devices is empty)")]
    return [describe_device(core, device, version) for device in devices]
