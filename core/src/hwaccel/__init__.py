"""hwaccel: which hardware should this Hugging Face model run on, measured.

Plugins import what they need from here::

    from hwaccel import hookimpl, HardwareInfo, Classification, ModelRef, TemplatePart

The predecessor's platform names are here too (``from hwaccel import CUDA, CPU, MPS,
OPENVINO, ROCM, QNN, WEBNN, WEBGPU``): an upper-case name resolves to the lower-case name of
a backend, or of another name a backend declares for its devices (the web backend's
providers), that a loaded plugin declares (``hwaccel_backend_info``); the core names none.

Importing this package imports nothing else: each of these names is imported from its module
on first use (PEP 562 ``__getattr__``), and no plugin is loaded until a function needs it (the
platform names load the plugins on first use).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports these on first use
    from typing import Any

    from hwaccel.compat.compatibility import HardwareCompatibilityReporter
    from hwaccel.compat.hardware_model_integration import (
        HardwareAwareModelClassifier,
        get_hardware_aware_model_classification,
    )
    from hwaccel.compat.resource_pool import get_global_resource_pool
    from hwaccel.hardware.devices import (
        DeviceChoice,
        HardwareDetector,
        get_torch_device_with_priority,
        select_device,
    )
    from hwaccel.hookspecs import hookimpl
    from hwaccel.types import (
        BackendInfo,
        BenchmarkRequest,
        BenchmarkResult,
        BenchmarkSettings,
        Classification,
        HardwareInfo,
        LabelRule,
        ModelRef,
        PipelineInfo,
        TemplatePart,
    )

__all__ = [
    "BackendInfo",
    "LabelRule",
    "PipelineInfo",
    "BenchmarkRequest",
    "BenchmarkResult",
    "BenchmarkSettings",
    "Classification",
    "DeviceChoice",
    "HardwareAwareModelClassifier",
    "HardwareCompatibilityReporter",
    "HardwareDetector",
    "HardwareInfo",
    "ModelRef",
    "TemplatePart",
    "__version__",
    "detect_available_hardware",
    "get_global_resource_pool",
    "get_hardware_aware_model_classification",
    "get_torch_device_with_priority",
    "hookimpl",
    "select_device",
]


_LAZY = {
    "hookimpl": "hwaccel.hookspecs",
    **dict.fromkeys(("BackendInfo", "BenchmarkRequest", "BenchmarkResult", "BenchmarkSettings",
                     "Classification", "HardwareInfo", "LabelRule", "ModelRef", "PipelineInfo",
                     "TemplatePart"), "hwaccel.types"),
    "HardwareCompatibilityReporter": "hwaccel.compat.compatibility",
    "HardwareAwareModelClassifier": "hwaccel.compat.hardware_model_integration",
    "get_hardware_aware_model_classification": "hwaccel.compat.hardware_model_integration",
    "get_global_resource_pool": "hwaccel.compat.resource_pool",
    "DeviceChoice": "hwaccel.hardware.devices",
    "HardwareDetector": "hwaccel.hardware.devices",
    "get_torch_device_with_priority": "hwaccel.hardware.devices",
    "select_device": "hwaccel.hardware.devices",
}
"""Each name of the API that this package re-exports, and the module it is imported from on
first use (PEP 562), so that ``import hwaccel`` (which the console script does) costs nothing
until a name is used."""


def __getattr__(name: str) -> Any:
    """The package version, the lazily imported names, and the platform names (``CUDA``)."""
    if name == "__version__":
        import importlib.metadata

        return importlib.metadata.version("hwaccel-core")
    if name in _LAZY:  # the API and the application's modules, imported on first use
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later uses skip this function
        return value
    if name.isupper() and not name.startswith("_"):
        from hwaccel.hardware.backends import installed

        value = installed().constant(name)
        if value is not None:
            return value
    raise AttributeError(f"module 'hwaccel' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *__all__})


def detect_available_hardware(refresh: bool = False) -> dict[str, Any]:
    """Return the detected hardware as the predecessor's dict: one key per backend.

    Each backend maps to ``{"available": bool, "reason": str | None, "devices": [...]}``,
    with every device's full record; detection is cached like ``hwaccel detect``.
    """
    from hwaccel.hardware.detection import detect
    from hwaccel.plugins import get_plugins

    report = detect(get_plugins(), refresh=refresh)
    out: dict[str, Any] = {}
    for info in report.hardware:
        entry = out.setdefault(info.backend, {"available": False, "reason": None, "devices": []})
        entry["devices"].append(info.to_dict())
        entry["available"] = entry["available"] or info.available
        if not info.available and entry["reason"] is None:
            entry["reason"] = info.reason
    return out
