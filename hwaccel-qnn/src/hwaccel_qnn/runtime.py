"""Run an exported model on QNN through ONNX Runtime, never silently on the CPU.

A session is created with only ``QNNExecutionProvider`` (and the QNN backend library found by
detection) and with ``session.disable_cpu_ep_fallback=1``, so that ONNX Runtime refuses a
graph whose nodes QNN cannot all run instead of handing them to its CPU provider. With the
``onnxruntime-qnn`` plugin the provider is added for its registered devices
(``SessionOptions.add_provider_for_devices``); a build with QNN inside ``onnxruntime`` takes
it from the provider list. The HTP computes an fp32 graph in fp16
(``enable_htp_fp16_precision``), for the SoC model detection names where it has none of its
own (the x86_64 simulator); ``int8`` runs the QDQ model :mod:`hwaccel_qnn.quantize` makes.
The graph QNN compiles is kept as an EP context model (``ep.context_enable``) beside the
export, keyed by everything that changes it, so a second session loads the compiled graph
instead of compiling again. Graphs for the HTP are first rewritten around what it is
known to compute wrongly (:mod:`hwaccel_qnn.graph_fixes`). If the
session still does not have QNN as its first provider (ONNX Runtime without QNN falls back to
the CPU with only a warning), it is refused with that reason: a CPU run is never measured or
tested as QNN.

:class:`QnnModel` is what ``place_model`` returns: called like the torch model with the
workload's named inputs (``model(**inputs, use_cache=False)``), it checks they are exactly
the exported shapes and dtypes and returns torch tensors named like the torch model's outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hwaccel import HardwareInfo
from hwaccel.kit.failures import BACKEND, AttributedError
from hwaccel.kit.onnx_export import ExportedModel, export_for
from hwaccel.kit.onnx_session import OnnxModel
from hwaccel_qnn.detect import PROVIDER, detect_qnn

DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
CONTEXT_ENABLE = "ep.context_enable"
CONTEXT_FILE = "ep.context_file_path"
CONTEXT_EMBED = "ep.context_embed_mode"  # "1": the compiled graph inside the one .onnx file
# HTP options: full clock for measurements; float nodes computed in fp16 (QNN's HTP default)
HTP_OPTIONS = {"htp_performance_mode": "burst", "enable_htp_fp16_precision": "1"}


class QnnSessionError(AttributedError):
    """ONNX Runtime could not, or would not, run the graph on the QNN provider: the
    backend's failure."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="session")


def provider_options(hardware: HardwareInfo) -> dict[str, str]:
    """The QNN provider options for a detected device: its backend library, HTP settings."""
    options = {"backend_path": str(hardware.details["backend_path"])}
    if hardware.details.get("qnn_backend") == "htp":
        options.update(HTP_OPTIONS)
        if hardware.details.get("soc_model"):
            options["soc_model"] = str(hardware.details["soc_model"])
    return options


def context_path(path: Path, options: dict[str, str]) -> Path:
    """Where the compiled graph of ``path`` under ``options`` is kept (an EP context model
    beside it, keyed by the options and the versions of ONNX Runtime and QNN)."""
    import importlib.metadata

    import onnxruntime

    try:
        qnn = importlib.metadata.version("onnxruntime-qnn")
    except importlib.metadata.PackageNotFoundError:
        qnn = None
    key = hashlib.sha256(json.dumps([sorted(options.items()), onnxruntime.__version__, qnn],
                                    default=str).encode()).hexdigest()[:12]
    return path.with_name(f"{path.stem}.qnn-{key}.ctx.onnx")


def create_session(path: Any, options: dict[str, str], *, cache_context: bool = True) -> Any:
    """Return an ``onnxruntime.InferenceSession`` for ``path`` that runs on QNN.

    With ``cache_context`` the first session compiles ``path`` and writes the compiled graph
    to :func:`context_path`; later ones load that instead of compiling again.

    :raises QnnSessionError: when ONNX Runtime fails to create it (a node QNN cannot run, a
        backend library that does not load) or creates it on another provider.
    """
    import onnxruntime as ort

    from hwaccel_qnn.detect import plugin_devices, register_plugin

    session_options = ort.SessionOptions()
    session_options.add_session_config_entry(DISABLE_CPU_FALLBACK, "1")
    written: tuple[Path, Path] | None = None
    if cache_context:
        context = context_path(Path(path), options)
        if context.is_file():
            path = context
        else:  # written under a name of this process's, then moved in place when complete
            partial = context.with_name(f"{context.stem}.partial-{os.getpid()}.onnx")
            partial.unlink(missing_ok=True)
            session_options.add_session_config_entry(CONTEXT_ENABLE, "1")
            session_options.add_session_config_entry(CONTEXT_FILE, str(partial))
            session_options.add_session_config_entry(CONTEXT_EMBED, "1")
            written = (partial, context)
    try:
        register_plugin(ort)
        devices = plugin_devices(ort)
        if devices:
            session_options.add_provider_for_devices(devices, options)
        providers = None if devices else [(PROVIDER, options)]
        session = ort.InferenceSession(str(path), sess_options=session_options,
                                       providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, ...)
        if written:  # a compiled graph of a refused session is never kept
            written[0].unlink(missing_ok=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise QnnSessionError(f"onnxruntime could not create a {PROVIDER} session for "
                              f"{path} with {options.get('backend_path')}: {first[:300]}"
                              ) from exc
    providers = list(session.get_providers())
    if written and written[0].is_file():
        if providers[:1] == [PROVIDER]:
            os.replace(*written)
        else:
            written[0].unlink()
    if not providers or providers[0] != PROVIDER:
        raise QnnSessionError(f"onnxruntime created the session on "
                              f"{', '.join(providers) or 'no provider'} instead of {PROVIDER}; "
                              "refusing to run a CPU fallback as QNN")
    return session


class QnnModel(OnnxModel):
    """An exported model in a QNN session, called like the torch model it came from (the
    kit's :class:`~hwaccel.kit.onnx_session.OnnxModel`, with the QNN device and precision)."""

    def __init__(self, session: Any, exported: ExportedModel, hardware: HardwareInfo,
                 precision: str, quantization: dict[str, Any] | None = None):
        super().__init__(session, exported, runtime="the QNN model")
        self.hardware = hardware
        self.precision = precision
        self.quantization = quantization

    def __repr__(self) -> str:
        return (f"QnnModel({self.exported.path.name} on {self.hardware.device}, "
                f"{self.signature.describe_inputs()})")


def default_device() -> HardwareInfo:
    """The first available QNN device (the NPU before the reference CPU backend).

    :raises QnnSessionError: with detection's reason when there is none.
    """
    infos = detect_qnn()
    available = [info for info in infos if info.available]
    if not available:
        raise QnnSessionError(f"no QNN device: {infos[0].reason}")
    return available[0]


def run_precision(hardware: HardwareInfo, requested: str) -> str:
    """What the device runs for ``requested``: int8 where it declares it, else the precision
    an fp32 graph runs in there (fp16 on the HTP, fp32 on QNN's CPU backend)."""
    if requested in hardware.capabilities and requested == "int8":
        return requested
    return str(hardware.details.get("fp32_runs_as", "fp32"))


def load_on_qnn(model: Any, workload: Any, batch_size: int, seq_len: int, *, model_ref: str,
                hardware: HardwareInfo | None = None, precision: str = "fp32") -> QnnModel:
    """Export ``model`` for the workload's call at ``batch_size`` x ``seq_len`` (or take the
    cached export) and open it on a QNN device.

    :param workload: the pipeline workload whose ``make_inputs`` and ``forward`` fix the call.
    :param model_ref: the model reference, part of the export's cache key.
    :param hardware: the detected QNN device (default: :func:`default_device`).
    :param precision: the precision asked for (:func:`run_precision` says what runs); int8
        quantizes the export, calibrated on the workload's inputs.
    """
    from hwaccel_qnn.graph_fixes import prepared_for_htp

    hardware = hardware or default_device()
    exported = export_for(model, workload, batch_size, seq_len, model_ref=model_ref)
    ran = run_precision(hardware, precision)
    options = provider_options(hardware)
    graph = prepared_for_htp(exported.path) if hardware.details.get("qnn_backend") == "htp" \
        else exported.path
    if ran != "int8":
        return QnnModel(create_session(graph, options), exported, hardware, ran)
    from hwaccel_qnn.quantize import calibration_feeds, quantize_for_htp

    quantized = quantize_for_htp(graph, calibration_feeds(workload, exported, batch_size,
                                                          seq_len))
    session = create_session(quantized.path, options)
    return QnnModel(session, exported, hardware, ran, quantized.description)
