"""What conversion adds to OpenVINO's PyTorch frontend: missing operations, one fix.

Conversion rules for operations the frontend lacks build them from OpenVINO opset nodes, so
the converted graph runs them in OpenVINO. They are passed to
``openvino.convert_model(..., extension=...)``:

* ``aten::diff`` (``torch.diff(x, n, dim, prepend, append)``): transformers' attention-mask
  code calls it on position ids (``find_packed_sequence_indices``) whenever a model is traced
  without an attention mask, as Whisper's decoder is.
* ``aten::histc`` (``torch.histc(x, bins, min, max)``): transformers' grouped mixture-of-experts
  code counts the tokens routed to each expert with it (Mixtral and others).

and :func:`masked_attention_as_torch` rewrites one PyTorch call while tracing, where
OpenVINO's attention differs from PyTorch's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_INT64_MAX = 2**63 - 1


def _optional_input(context: Any, index: int) -> Any | None:
    """Input ``index`` of the node, or ``None`` where the call passed ``None``."""
    if index >= context.get_input_size():
        return None
    try:
        value = context.get_values_from_const_input(index, None)
    except Exception:  # noqa: BLE001 - not a constant: a computed tensor
        return context.get_input(index)
    return None if value is None else context.get_input(index)


def translate_diff(context: Any) -> list[Any]:
    """``aten::diff``: the ``n``-th forward difference along ``dim``, after prepend/append."""
    import openvino.opset13 as ops
    from openvino import Type

    data = context.get_input(0)
    n = int(context.get_values_from_const_input(1, 1))
    dim = int(context.get_values_from_const_input(2, -1))
    prepend, append = _optional_input(context, 3), _optional_input(context, 4)
    parts = [p for p in (prepend, data, append) if p is not None]
    value = ops.concat(parts, dim).output(0) if len(parts) > 1 else data
    for _ in range(n):
        later = ops.slice(value, [1], [_INT64_MAX], [1], [dim])
        earlier = ops.slice(value, [0], [-1], [1], [dim])
        if value.get_element_type() == Type.boolean:
            value = ops.not_equal(later, earlier).output(0)  # torch.diff of bools is XOR
        else:
            value = ops.subtract(later, earlier).output(0)
    return [value]


def translate_histc(context: Any) -> list[Any]:
    """``aten::histc``: counts in ``bins`` equal bins over [min, max], as torch computes them.

    Values outside the range are not counted and a value equal to ``max`` falls in the last
    bin; ``min == max == 0`` takes the range from the data (widened by 1 on each side when
    the data are constant). The counts have the input's floating type.
    """
    import numpy as np
    import openvino.opset13 as ops

    data = context.get_input(0)
    bins = int(context.get_values_from_const_input(1, 100))
    low = float(context.get_values_from_const_input(2, 0))
    high = float(context.get_values_from_const_input(3, 0))
    kind = data.get_element_type()
    flat = ops.convert(ops.reshape(data, [-1], False), "f32")
    if low == high == 0:
        lo = ops.reduce_min(flat, [0], False)
        hi = ops.reduce_max(flat, [0], False)
        same = ops.equal(lo, hi)
        lo = ops.select(same, ops.subtract(lo, np.float32(1)), lo)
        hi = ops.select(same, ops.add(hi, np.float32(1)), hi)
    else:
        if low == high:  # torch widens a constant range the same way
            low, high = low - 1, high + 1
        lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
    scaled = ops.divide(ops.multiply(ops.subtract(flat, lo), np.float32(bins)),
                        ops.subtract(hi, lo))
    index = ops.minimum(ops.convert(ops.floor(scaled), "i64"), np.int64(bins - 1))
    inside = ops.logical_and(ops.greater_equal(flat, lo), ops.less_equal(flat, hi))
    index = ops.select(inside, index, np.int64(bins))  # out of range: no one-hot bit
    one_hot = ops.one_hot(index, np.int64(bins), np.float32(1), np.float32(0), -1)
    counts = ops.reduce_sum(one_hot, [0], False)
    if kind.is_real():
        counts = ops.convert(counts, kind)
    return [counts.output(0)]


@contextlib.contextmanager
def masked_attention_as_torch() -> Iterator[None]:
    """While tracing, give attention rows whose keys are all masked PyTorch's result.

    OpenVINO's ``ScaledDotProductAttention`` returns NaN for a query row whose keys are all
    masked out by a boolean mask (openvinotoolkit/openvino#31630); such rows are normal with
    left padding and a causal mask, and the NaN then spreads through the whole sequence.
    PyTorch returns zeros for them. Inside this block
    ``torch.nn.functional.scaled_dot_product_attention`` passes OpenVINO an additive mask
    with the dtype's finite minimum instead of a boolean (or ``-inf``) one, then zeroes the
    rows that had no key, which is PyTorch's answer; every other row is unchanged.
    """
    import torch

    original = torch.nn.functional.scaled_dot_product_attention

    def attention(query: Any, key: Any, value: Any, attn_mask: Any = None, *args: Any,
                  **kwargs: Any) -> Any:
        if attn_mask is None:
            return original(query, key, value, attn_mask, *args, **kwargs)
        lowest = torch.finfo(query.dtype).min
        if attn_mask.dtype == torch.bool:
            keep = attn_mask.any(dim=-1, keepdim=True)
            zero = torch.zeros((), dtype=query.dtype)
            additive = torch.where(attn_mask, zero, torch.full((), lowest, dtype=query.dtype))
        else:
            keep = (attn_mask > float("-inf")).any(dim=-1, keepdim=True)
            additive = attn_mask.clamp_min(lowest)
        out = original(query, key, value, additive, *args, **kwargs)
        return torch.where(keep, out, torch.zeros((), dtype=out.dtype))

    torch.nn.functional.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def conversion_extensions() -> list[Any]:
    """The ``ConversionExtension`` objects for every rule of this module."""
    from openvino.frontend.pytorch import ConversionExtension

    return [ConversionExtension("aten::diff", translate_diff),
            ConversionExtension("aten::histc", translate_histc)]
