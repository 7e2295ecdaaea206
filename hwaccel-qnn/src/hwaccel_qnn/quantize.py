"""int8 for the HTP: the fixed-shape ONNX export quantized to QDQ form, cached beside it.

ONNX Runtime's static quantizer inserts QuantizeLinear/DequantizeLinear pairs whose scales
come from calibration; the QNN provider compiles those pairs into the HTP's integer kernels.
The settings are the ones ``onnxruntime.quantization.execution_providers.qnn`` prepares for
QNN (:func:`get_qnn_qdq_config` after :func:`qnn_preprocess_model`): 8-bit weights per
output channel and 16-bit activations (:data:`WEIGHTS`, :data:`ACTIVATIONS`; Qualcomm's
"w8a16"). 8-bit activations were measured first: on MiniLM they left a sentence-embedding
cosine of 0.83 to fp32 (0.85 per tensor), against 0.999 with 16-bit ones.

Calibration feeds are the pipeline workload's own inputs: :func:`calibration_feeds` asks the
workload for :data:`CALIBRATION_ROWS` times the batch and cuts that into batches of the graph's
shape, so a text model sees several of its sentences rather than one. Tensors whose calibrated
magnitude is beyond fp16's range (an attention mask's ``finfo.min``) cannot be given an 8- or
16-bit scale that keeps the rest of the tensor; the nodes that read or write them stay float
(the HTP runs them in fp16) and the quantized model records which ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import BACKEND, AttributedError
from hwaccel.kit.onnx_export import ExportedModel

CALIBRATION_ROWS = 4
"""How many batches of the workload's inputs calibrate the activation ranges."""
WEIGHTS = "8-bit (uint8) per output channel"
ACTIVATIONS = "uint16"
FLOAT_LIMIT = 65504.0
"""fp16's largest value: a tensor calibrated beyond it keeps its nodes in float."""
QUANTIZER_VERSION = 1  # bump when the settings below change what a cached model holds


class QuantizationError(AttributedError):
    """ONNX Runtime's quantizer could not make the QDQ model: the backend's toolchain failed."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="quantization")


@dataclass(frozen=True)
class QuantizedModel:
    """A QDQ model made from an export: its path and what was quantized how."""

    path: Path
    description: dict[str, Any]
    cache_hit: bool


def calibration_feeds(workload: Any, exported: ExportedModel, batch_size: int,
                      seq_len: int) -> list[dict[str, Any]]:
    """Graph feeds (NumPy arrays by graph input name) for calibration.

    The workload makes inputs for ``CALIBRATION_ROWS * batch_size`` rows, cut into batches of
    ``batch_size``; where an input does not have that many rows first (or the cut batches do
    not match the graph's shapes), the one batch of the graph's own shape is used alone.
    """
    own = {name: value.detach().cpu().numpy()
           for name, value in exported.feeds(workload.make_inputs(batch_size, seq_len)).items()}
    wide = exported.feeds(workload.make_inputs(CALIBRATION_ROWS * batch_size, seq_len))
    feeds = []
    for row in range(CALIBRATION_ROWS):
        start = row * batch_size
        feed = {name: value[start:start + batch_size].detach().cpu().numpy()
                for name, value in wide.items()}
        if set(feed) != set(own) or any(feed[n].shape != own[n].shape or
                                        feed[n].dtype != own[n].dtype for n in own):
            return [own]
        feeds.append(feed)
    return feeds


def float_nodes(path: Path, feeds: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The nodes that read or write a tensor whose calibrated magnitude exceeds
    :data:`FLOAT_LIMIT`, and those tensors (found by running every node output on ONNX
    Runtime's CPU provider)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    names = [output for node in model.graph.node for output in node.output if output]
    del model.graph.output[:]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    peak: dict[str, float] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            array = np.asarray(value)
            if array.size and np.issubdtype(array.dtype, np.floating):
                peak[name] = max(peak.get(name, 0.0), float(np.abs(array).max()))
    wide = sorted(name for name, value in peak.items() if value > FLOAT_LIMIT)
    nodes = [node.name for node in model.graph.node
             if set(wide) & (set(node.input) | set(node.output))]
    return nodes, wide


def _key(graph: Path, feeds: list[dict[str, Any]]) -> str:
    """What the QDQ model depends on: the graph, the calibration feeds, the quantizer."""
    import onnxruntime

    digest = hashlib.sha256()
    digest.update(json.dumps([graph.stem, onnxruntime.__version__, QUANTIZER_VERSION,
                              WEIGHTS, ACTIVATIONS, CALIBRATION_ROWS]).encode())
    for feed in feeds:
        for name in sorted(feed):
            digest.update(name.encode())
            digest.update(feed[name].tobytes())
    return digest.hexdigest()[:16]


def quantize_for_htp(graph: Path, feeds: list[dict[str, Any]]) -> QuantizedModel:
    """Return the QDQ int8 model of the exported ``graph`` calibrated on ``feeds`` (cached
    beside it under a key of both).

    :raises QuantizationError: when ONNX Runtime's quantizer fails on the graph.
    """
    key = _key(graph, feeds)
    path = graph.with_name(f"{graph.stem}.qdq-{key}.onnx")
    record = path.with_suffix(".json")
    if path.is_file() and record.is_file():
        try:
            return QuantizedModel(path, json.loads(record.read_text(encoding="utf-8")), True)
        except (OSError, ValueError):
            pass  # made again below
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    class Feeds(CalibrationDataReader):
        """The calibration feeds, one batch per call."""

        def __init__(self) -> None:
            self.remaining = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.remaining, None)

    partial = f"partial-{os.getpid()}"
    prepared = path.with_name(f"{path.stem}.{partial}.prepared.onnx")
    output = path.with_name(f"{path.stem}.{partial}.onnx")
    try:
        source = prepared if qnn_preprocess_model(str(graph), str(prepared)) else graph
        nodes, tensors = float_nodes(source, feeds)
        config = get_qnn_qdq_config(str(source), Feeds(), activation_type=QuantType.QUInt16,
                                    weight_type=QuantType.QUInt8, per_channel=True,
                                    nodes_to_exclude=nodes)
        quantize(str(source), str(output), config)
        os.replace(output, path)
    except Exception as exc:  # the quantizer raises many types; the reason is its message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise QuantizationError(f"onnxruntime's QDQ quantizer failed on {graph.name}: "
                                f"{first[:300]}") from exc
    finally:
        prepared.unlink(missing_ok=True)
        output.unlink(missing_ok=True)
    description = {"method": "QDQ static quantization (onnxruntime.quantization, QNN settings)",
                   "weights": WEIGHTS, "activations": ACTIVATIONS,
                   "calibration_batches": len(feeds), "float_nodes": nodes,
                   "float_because": {"tensors": tensors, "limit": FLOAT_LIMIT}}
    tmp = record.with_name(f"{record.name}.{partial}")
    tmp.write_text(json.dumps(description, indent=1), encoding="utf-8")
    os.replace(tmp, record)
    return QuantizedModel(path, description, False)
