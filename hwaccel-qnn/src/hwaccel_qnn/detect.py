"""QNN detection: ONNX Runtime's QNN execution provider and the QNN backend libraries.

The QNN execution provider ships in the ``onnxruntime-qnn`` wheel (the same ``onnxruntime``
import package, built with QNN), with the Qualcomm backend libraries next to it in
``onnxruntime/capi/``: ``QnnHtp.dll``/``libQnnHtp.so`` drives the Hexagon NPU,
``QnnCpu.dll``/``libQnnCpu.so`` is Qualcomm's reference CPU backend. A device is reported for
each backend library found (the NPU first), and only when ONNX Runtime lists
``QNNExecutionProvider`` among its available providers.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from hwaccel import HardwareInfo

NAME = "qnn"
PROVIDER = "QNNExecutionProvider"
# QNN backend -> (library file names, what it runs on, the precision an fp32 graph runs in)
BACKENDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "htp": (("QnnHtp.dll", "libQnnHtp.so"), "Hexagon NPU (HTP)", "fp16"),
    "cpu": (("QnnCpu.dll", "libQnnCpu.so"), "QNN reference CPU backend", "fp32"),
}
BACKEND_PATH_ENV = "HWACCEL_QNN_BACKEND_PATH"
INSTALL_HINT = "install onnxruntime-qnn on a Snapdragon device"


def ort_distribution() -> str | None:
    """The installed distribution that provides ``onnxruntime`` (``onnxruntime-qnn`` first)."""
    for dist in ("onnxruntime-qnn", "onnxruntime", "onnxruntime-gpu",
                 "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_dirs(ort_module: Any) -> list[Path]:
    """Folders searched for QNN backend libraries: next to the onnxruntime package, then the
    QNN SDK named by ``QNN_SDK_ROOT`` (its ``lib/<target>/`` folders)."""
    package = Path(ort_module.__file__).resolve().parent
    dirs = [package / "capi", package]
    sdk = os.environ.get("QNN_SDK_ROOT")
    if sdk:
        dirs.extend(Path(p) for p in sorted(glob.glob(os.path.join(sdk, "lib", "*"))))
    return dirs


def find_backend_libraries(dirs: list[Path]) -> dict[str, str]:
    """Return QNN backend -> library path, for every backend whose library is in ``dirs``.

    ``HWACCEL_QNN_BACKEND_PATH`` names one library explicitly (its file name says which
    backend it is) and takes precedence over the search.
    """
    found: dict[str, str] = {}
    explicit = os.environ.get(BACKEND_PATH_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        for backend, (names, _, _) in BACKENDS.items():
            if path.name in names and path.is_file():
                found[backend] = str(path)
    for backend, (names, _, _) in BACKENDS.items():
        if backend in found:
            continue
        for folder in dirs:
            hits = [folder / name for name in names if (folder / name).is_file()]
            if hits:
                found[backend] = str(hits[0])
                break
    return found


def _read(path: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.replace("\x00", " ").strip()


def soc_details() -> dict[str, Any]:
    """What the operating system says about the SoC (Linux/Android sysfs, device tree, CPU)."""
    details: dict[str, Any] = {"system": platform.system(), "machine": platform.machine(),
                               "processor": platform.processor() or None}
    for key in ("family", "machine", "soc_id", "revision"):
        value = _read(f"/sys/devices/soc0/{key}")
        if value:
            details[f"soc_{key}"] = value
    for key, path in (("device_model", "/proc/device-tree/model"),
                      ("device_compatible", "/proc/device-tree/compatible")):
        value = _read(path)
        if value:
            details[key] = value
    return details


def _ep_devices(ort: Any) -> list[dict[str, Any]]:
    """ONNX Runtime's own description of the devices the QNN provider can use (ORT >= 1.22)."""
    get = getattr(ort, "get_ep_devices", None)
    if get is None:
        return []
    try:
        ep_devices = list(get())
    except Exception:  # an extra detail only: the provider list decides availability
        return []
    devices = []
    for ep_device in ep_devices:
        if ep_device.ep_name != PROVIDER:
            continue
        device = ep_device.device
        devices.append({"type": str(device.type).rsplit(".", 1)[-1], "vendor": device.vendor,
                        "vendor_id": device.vendor_id, "device_id": device.device_id,
                        "metadata": dict(device.metadata),
                        "ep_metadata": dict(ep_device.ep_metadata)})
    return devices


def unavailable(reason: str, details: dict[str, Any]) -> HardwareInfo:
    """The one record reporting the QNN backend absent, with ``reason``."""
    return HardwareInfo(backend=NAME, device=NAME, name="Qualcomm QNN", available=False,
                        reason=reason, details=details)


def detect_qnn() -> list[HardwareInfo]:
    """Return one device per QNN backend library found, or one unavailable record."""
    details: dict[str, Any] = {"onnxruntime_distribution": ort_distribution(), **soc_details()}
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return [unavailable(f"onnxruntime cannot be imported ({exc}); {INSTALL_HINT}",
                            details)]
    providers = list(ort.get_available_providers())
    details.update(onnxruntime=ort.__version__, providers=providers)
    if PROVIDER not in providers:
        return [unavailable(f"onnxruntime {ort.__version__} has no {PROVIDER} (providers: "
                            f"{', '.join(providers)}); {INSTALL_HINT}", details)]
    dirs = library_dirs(ort)
    libraries = find_backend_libraries(dirs)
    details["searched"] = [str(d) for d in dirs]
    if not libraries:
        names = ", ".join(n for names, _, _ in BACKENDS.values() for n in names)
        return [unavailable(f"onnxruntime {ort.__version__} has {PROVIDER} but no QNN backend "
                            f"library ({names}) is in {', '.join(map(str, dirs))}; set "
                            f"{BACKEND_PATH_ENV} to the library", details)]
    ep_devices = _ep_devices(ort)
    soc = details.get("soc_machine") or details.get("device_model") or details["processor"]
    infos = []
    for index, (backend, path) in enumerate(libraries.items()):
        _, role, precision = BACKENDS[backend]
        infos.append(HardwareInfo(
            backend=NAME, device=f"{NAME}:{backend}", index=index, available=True,
            name=f"{role}{' on ' + soc if soc else ''}",
            capabilities=("fp16", "int8") if backend == "htp" else ("fp32",),
            details={**details, "qnn_backend": backend, "backend_path": path,
                     "fp32_runs_as": precision, "static_shapes": True,
                     "ep_devices": ep_devices},
            compute_resource="host-cpu" if backend == "cpu" else f"{NAME}:{backend}",
            converted_weights="fp32",  # the fp32 ONNX export cached per input shape
            converted_unties_weights=True))
    return infos
