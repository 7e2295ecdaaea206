"""Conversions torch's TorchScript ONNX exporter lacks or gets wrong, registered before every
export (:func:`register`), so a model that uses them converts to the graph it computes.

* ``aten::diff`` (transformers' packed-sequence check in ``masking_utils``, reached by
  Whisper's decoder): no conversion at all. Here: the ``prepend``/``append`` tensors
  concatenated, then ``n`` times the difference of the tensor shifted by one along ``dim``.
* ``aten::cumsum`` of a bool or small-integer tensor: exported as ``CumSum`` of that type,
  which ONNX does not define (the model fails to load), where torch sums into int64. Here:
  cast to the dtype asked for, or to int64 for every integer type, as torch does.
"""

from __future__ import annotations

from typing import Any

_REGISTERED: set[int] = set()
_INT64 = 7  # onnx.TensorProto.INT64


def _diff(g: Any, x: Any, n: int, dim: int, prepend: Any, append: Any) -> Any:
    import torch
    from torch.onnx import symbolic_helper

    parts = [part for part in (prepend, x, append) if not symbolic_helper._is_none(part)]
    if len(parts) > 1:
        x = g.op("Concat", *parts, axis_i=dim)

    def constant(value: int) -> Any:
        return g.op("Constant", value_t=torch.tensor([value], dtype=torch.int64))

    for _ in range(n):
        later = g.op("Slice", x, constant(1), constant(2**62), constant(dim))
        earlier = g.op("Slice", x, constant(0), constant(-1), constant(dim))
        x = g.op("Sub", later, earlier)
    return x


def _cumsum(g: Any, x: Any, dim: int, dtype: Any = None) -> Any:
    import torch
    from torch.onnx import symbolic_helper
    from torch.onnx._internal.torchscript_exporter import _type_utils

    scalar = _type_utils.JitScalarType
    if dtype is not None and not symbolic_helper._is_none(dtype):
        target = scalar(symbolic_helper._get_const(dtype, "i", "dtype")).onnx_type()
        x = g.op("Cast", x, to_i=target)
    else:
        kind = scalar.from_value(x, scalar.UNDEFINED)
        if kind in (scalar.BOOL, scalar.UINT8, scalar.INT8, scalar.INT16, scalar.INT):
            x = g.op("Cast", x, to_i=_INT64)
    return g.op("CumSum", x, g.op("Constant", value_t=torch.tensor(dim, dtype=torch.int64)))


def register(opset: int) -> None:
    """Register the conversions above for ``opset`` (once per process and opset)."""
    if opset in _REGISTERED:
        return
    import torch
    from torch.onnx import symbolic_helper

    torch.onnx.register_custom_op_symbolic(
        "aten::diff", symbolic_helper.parse_args("v", "i", "i", "v", "v")(_diff), opset)
    torch.onnx.register_custom_op_symbolic(
        "aten::cumsum", symbolic_helper.parse_args("v", "i", "v")(_cumsum), opset)
    _REGISTERED.add(opset)
