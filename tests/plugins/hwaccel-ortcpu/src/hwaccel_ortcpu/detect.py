"""Detection: ONNX Runtime installed, with its CPU execution provider."""

from __future__ import annotations

import importlib.metadata

from hwaccel import HardwareInfo

PROVIDER = "CPUExecutionProvider"


def detect() -> HardwareInfo:
    """The host CPU as ONNX Runtime's CPU provider sees it, or why it is absent."""
    base = {"backend": "ortcpu", "device": "cpu", "name": "ONNX Runtime CPU",
            "device_string": "ortcpu:cpu", "converted_weights": "fp32",
            "converted_unties_weights": True}
    try:
        version = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return HardwareInfo(**base, available=False, reason="onnxruntime is not installed")
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if PROVIDER not in providers:
        return HardwareInfo(**base, available=False,
                            reason=f"onnxruntime {version} has no {PROVIDER} "
                                   f"(it has {', '.join(providers) or 'none'})")
    return HardwareInfo(**base, available=True, capabilities=("fp32",),
                        details={"onnxruntime": version, "providers": providers})
