"""QNN detection: ONNX Runtime's QNN execution provider and the QNN backend libraries.

Since onnxruntime 1.2x the QNN execution provider is a *plugin*: the ``onnxruntime-qnn`` 2.x
wheel carries ``libonnxruntime_providers_qnn.so`` and Qualcomm's backend libraries, and
detection registers it with ``onnxruntime.register_execution_provider_library`` (once per
process); ONNX Runtime then lists the provider's devices in ``get_ep_devices()``. Older
builds (Snapdragon Windows/Android wheels of ``onnxruntime-qnn`` 1.x) ship the provider
inside ``onnxruntime`` itself, with the backend libraries in ``onnxruntime/capi/``; that
layout is still recognised by the provider list. ``QnnHtp.dll``/``libQnnHtp.so`` drives the
Hexagon NPU, ``QnnCpu.dll``/``libQnnCpu.so`` is Qualcomm's reference CPU backend. A device is
reported for each backend library found (the NPU first).

On x86_64 there is no Hexagon NPU: ``libQnnHtp.so`` there runs Qualcomm's HTP graph compiler
and operators in Qualcomm's x86 simulator. The device is named so ("Qualcomm HTP (x86_64
simulator)", ``details.simulator`` true, the SoC model it compiles for): whether a graph
compiles and what it computes are the real HTP's answers, its latency is the simulator's,
not an NPU's.
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
SOC_MODEL_ENV = "HWACCEL_QNN_SOC_MODEL"
DEFAULT_SOC_MODEL = "60"
"""The SoC model the HTP compiles for when the machine has none (``soc_model``; fp16 on the
HTP needs one)."""
SIMULATED_MACHINES = ("x86_64", "amd64")
INSTALL_HINT = "pip install 'hwaccel[qnn]' (onnxruntime-qnn)"


def register_plugin(ort: Any) -> Path | None:
    """Register ``onnxruntime-qnn``'s plugin execution provider with ONNX Runtime (once per
    process) and return the folder of its libraries; ``None`` when the package is not
    installed (the provider may still be built into ``onnxruntime``)."""
    try:
        import onnxruntime_qnn
    except ImportError:
        return None
    if PROVIDER not in {device.ep_name for device in ort.get_ep_devices()}:
        ort.register_execution_provider_library(PROVIDER, onnxruntime_qnn.get_library_path())
    return Path(onnxruntime_qnn.get_library_path()).parent


def plugin_devices(ort: Any) -> list[Any]:
    """The ``OrtEpDevice`` entries of the QNN provider (empty without the plugin)."""
    get = getattr(ort, "get_ep_devices", None)
    return [device for device in (get() if get else []) if device.ep_name == PROVIDER]


def simulated(backend: str) -> bool:
    """True when ``backend`` runs in Qualcomm's simulator here: the HTP on an x86_64 host."""
    return backend == "htp" and platform.machine().lower() in SIMULATED_MACHINES


def ort_distribution() -> str | None:
    """The installed distribution that provides ``onnxruntime`` (``onnxruntime-qnn`` first)."""
    for dist in ("onnxruntime-qnn", "onnxruntime", "onnxruntime-gpu",
                 "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_dirs(ort_module: Any, plugin: Path | None = None) -> list[Path]:
    """Folders searched for QNN backend libraries: the plugin's, then next to the onnxruntime
    package, then the QNN SDK named by ``QNN_SDK_ROOT`` (its ``lib/<target>/`` folders)."""
    package = Path(ort_module.__file__).resolve().parent
    dirs = ([plugin] if plugin else []) + [package / "capi", package]
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
    try:
        plugin = register_plugin(ort)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        return [unavailable(f"onnxruntime {ort.__version__} could not load the "
                            f"onnxruntime-qnn plugin: {str(exc).strip()[:300]}", details)]
    providers = list(ort.get_available_providers())
    details.update(onnxruntime=ort.__version__, providers=providers,
                   plugin=str(plugin) if plugin else None)
    if PROVIDER not in providers:
        return [unavailable(f"onnxruntime {ort.__version__} has no {PROVIDER} (providers: "
                            f"{', '.join(providers)}); {INSTALL_HINT}", details)]
    dirs = library_dirs(ort, plugin)
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
        simulator = simulated(backend)
        name = f"Qualcomm HTP ({platform.machine()} simulator)" if simulator else \
            f"{role}{' on ' + soc if soc else ''}"
        extra = {"simulator": True, "soc_model": os.environ.get(
            SOC_MODEL_ENV, DEFAULT_SOC_MODEL)} if simulator else {"simulator": False}
        infos.append(HardwareInfo(
            backend=NAME, device=f"{NAME}:{backend}", index=index, available=True,
            name=name,
            capabilities=("fp16", "int8") if backend == "htp" else ("fp32",),
            details={**details, "qnn_backend": backend, "backend_path": path,
                     "fp32_runs_as": precision, "static_shapes": True,
                     "ep_devices": ep_devices, **extra},
            compute_resource="host-cpu" if backend == "cpu" else f"{NAME}:{backend}",
            converted_weights="fp32",  # the fp32 ONNX export cached per input shape
            converted_unties_weights=True))
    return infos
