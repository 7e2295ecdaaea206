"""Weight compression of a converted graph with NNCF: ``int8`` and ``int4`` weights.

``nncf.compress_weights`` rewrites the constant weights of the graph's MatMul, Gather
(embeddings) and convolution nodes into integers with per-channel (int8) or per-group (int4)
scales and zero points; the device decompresses them inside its kernels. Activations stay in
floating point: the compiled graph runs them in the device's own precision (see
:func:`hwaccel_openvino.convert.compile_config`), which :func:`describe` records.

- ``int8``: ``CompressWeightsMode.INT8_ASYM``, per output channel, every weight. Asymmetric
  (a zero point per channel) is NNCF's default mode: a weight range that is not centred on
  zero keeps all 256 levels, where a symmetric one leaves part of them unused.
- ``int4``: ``CompressWeightsMode.INT4_ASYM`` with groups of 128 input channels, ratio 1.0
  (every weight NNCF's rules allow in int4). The embeddings and the last MatMul stay
  ``int8_asym`` (NNCF's backup mode: they are the most sensitive to error). A weight whose
  input channels do not divide into groups of 128 gets the largest power-of-two group (at
  least 32) that divides them, else stays ``int8_asym`` (NNCF's
  ``GroupSizeFallbackMode.ADJUST``: small models' hidden sizes). Asymmetric for the same
  reason as int8; the CPU and GPU plugins run u4 weights with zero points as they run
  symmetric i4 ones, decompressing them inside their MatMul kernels.

Float precisions (``fp32``, ``fp16``, ``bf16``, ``native``) leave the graph unchanged.
``nncf`` is imported only when a graph is compressed.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

from hwaccel.kit.failures import BACKEND, AttributedError, one_line
from hwaccel.types import QUANTIZED_PRECISIONS

INT4_GROUP_SIZE = 128
# hwaccel precision -> (nncf CompressWeightsMode name, what the row's details say)
MODES = {
    "int8": ("INT8_ASYM", "int8_asym per channel (NNCF weight compression)"),
    "int4": ("INT4_ASYM", f"int4_asym, groups of up to {INT4_GROUP_SIZE}, embeddings and "
                          "last MatMul int8_asym (NNCF weight compression)"),
}


class CompressionError(AttributedError):
    """Weight compression that cannot run (nncf missing, or NNCF refusing the graph): the
    backend's failure, one line."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="compression")


def is_compressed(precision: str) -> bool:
    """True for the precisions whose weights :func:`compress` compresses (int8, int4)."""
    return precision in QUANTIZED_PRECISIONS


def _import_nncf() -> Any:
    """The nncf module, or a :class:`CompressionError` naming the install command."""
    try:
        import nncf
    except ImportError as exc:
        raise CompressionError(
            f"int8/int4 weights on OpenVINO need nncf, which is not importable ({exc}): "
            "pip install hwaccel-openvino installs it") from None
    return nncf


def compress(ov_model: Any, precision: str) -> Any:
    """Return ``ov_model`` with its weights compressed for ``precision`` (``int8``: int8_asym
    per channel; ``int4``: int4_asym in groups of 128), or unchanged for a float precision.

    The graph is compressed in place by NNCF (and returned). NNCF's statistics table (its
    log, at INFO) and progress bar, which it writes to standard output, are kept out of it
    (a job's output may be JSON): its log is set to errors only.

    :raises CompressionError: when nncf is missing or NNCF cannot compress the graph.
    """
    if not is_compressed(precision):
        return ov_model
    nncf = _import_nncf()
    mode_name, _ = MODES[precision]
    options: dict[str, Any] = {"mode": getattr(nncf.CompressWeightsMode, mode_name)}
    if precision == "int4":
        options.update(group_size=INT4_GROUP_SIZE, ratio=1.0,
                       advanced_parameters=nncf.AdvancedCompressionParameters(
                           group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST))
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.compress_weights(ov_model, **options)
    except Exception as exc:  # noqa: BLE001 - NNCF's own message, on one line
        raise CompressionError(f"nncf.compress_weights({mode_name}) failed: "
                               f"{one_line(exc, 300)}") from exc


def describe(precision: str, activations: str | None) -> dict[str, str]:
    """What ran, for a row's details: the weights (compressed or as converted) and the
    precision the device computed activations in (``activations``, e.g. ``bf16``)."""
    weights = MODES[precision][1] if is_compressed(precision) else "fp32 (as converted)"
    return {"weights": weights, "activations": activations or "unknown"}
