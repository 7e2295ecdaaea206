"""Checks of a model's config file before anything is built from it.

A ``config.json`` comes from the user (a folder, the hub cache): hwaccel reads it, then
transformers builds a config object and a model skeleton from its numbers. Hostile or broken
numbers (a string width, ``NaN``, zero heads, a billion layers, an integer of 400 digits)
must fail here, as one line naming the file and the key, not deep inside transformers or
torch, and never hang. What is checked:

* the file: at most :data:`MAX_CONFIG_BYTES`, JSON nested at most :data:`MAX_DEPTH` deep,
  no ``NaN``/``Infinity`` (Python's ``json`` accepts them), no number outside 64 bits;
* the sizes that the footprint (:mod:`hwaccel.estimates.footprint`) and the tiny shrinking read, in
  the config and in every nested sub-config (``text_config``, ``vision_config``, ...): each
  an integer (``true`` is not one, ``2.5`` is not; ``1200.0`` passes, as published configs
  hold such floats, and transformers' own field types decide), positive where it sizes a
  tensor, at most the maximum of :data:`SIZE_LIMITS` (generous: far above any published
  model, low enough that a model skeleton builds in seconds). Whether heads must divide
  the width depends on the architecture (BERT requires it, Llama-style models floor the
  head size): the model's own check decides, and
  :meth:`hwaccel.types.ModelRef.load_config` and the footprint report its refusal as the
  config's error.

:func:`load_config_json` reads and checks a file; :func:`check_sizes` checks a parsed dict
(a catalogue's published config).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hwaccel.errors import ModelReferenceError

MAX_CONFIG_BYTES = 16 * 2**20
"""Largest config file read (published configs with a 21,000-class ``id2label`` stay under
2 MiB)."""
MAX_DEPTH = 64
"""Deepest nesting of JSON objects and arrays in a config file."""
_INT64 = 2**63

_LAYERS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_decoder_layers",
           "encoder_layers", "decoder_layers")
_HEADS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
          "decoder_attention_heads")
_KV_HEADS = ("num_key_value_heads", "num_kv_heads", "multi_query_group_num")
_WIDTHS = ("hidden_size", "n_embd", "d_model", "embed_dim")
_INNER = ("intermediate_size", "ffn_dim", "d_ff", "n_inner", "encoder_ffn_dim",
          "decoder_ffn_dim", "moe_intermediate_size", "shared_expert_intermediate_size")
_POSITIONS = ("max_position_embeddings", "n_positions", "max_sequence_length",
              "max_target_positions", "max_source_positions")
_EXPERTS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")

SIZE_LIMITS: dict[str, tuple[int, int]] = {
    **{key: (0, 1024) for key in _LAYERS},
    **{key: (1, 4096) for key in _HEADS},
    **{key: (1, 4096) for key in _KV_HEADS},
    **{key: (1, 2**18) for key in _WIDTHS},
    **{key: (1, 2**21) for key in _INNER},
    **{key: (1, 2**28) for key in _POSITIONS},
    **{key: (0, 2**16) for key in _EXPERTS},
    "head_dim": (0, 2**16),
    "d_kv": (1, 2**16),
    "vocab_size": (1, 2**24),
    "image_size": (1, 2**16),
    "patch_size": (1, 2**16),
    "num_channels": (1, 2**16),
}
"""Config keys read as sizes: (smallest, largest) allowed value. A key set to ``null`` is
left to the class's default; a per-stage list (``image_size: [224, 224]``) or a per-part
object (LXMERT's ``num_hidden_layers``) is checked item by item."""


class _BadNumber(ValueError):
    """A JSON number hwaccel refuses (not finite, or beyond 64 bits)."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not -_INT64 <= int(text) < _INT64:
        raise _BadNumber(f"the integer {text[:12]}{'...' if len(text) > 12 else ''} "
                         f"({len(text.lstrip('-'))} digits) is beyond 64 bits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"the number {text[:24]} is beyond floating point range")
    return value


def _parse_constant(name: str) -> float:
    raise _BadNumber(f"{name} is not a number JSON allows")


def load_config_json(config_file: Path) -> dict[str, Any]:
    """Read a model's config file and check it (see the module docstring).

    :raises ModelReferenceError: one line naming the file and what is wrong.
    """
    try:
        with open(config_file, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ModelReferenceError(f"cannot read {config_file}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelReferenceError(f"malformed {config_file}: larger than "
                                  f"{MAX_CONFIG_BYTES // 2**20} MiB, not a model config")
    try:
        data = json.loads(raw.decode("utf-8"), parse_int=_parse_int,
                          parse_float=_parse_float, parse_constant=_parse_constant)
    except UnicodeDecodeError:
        raise ModelReferenceError(f"malformed {config_file}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ModelReferenceError(
            f"malformed {config_file}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _BadNumber as exc:
        raise ModelReferenceError(f"malformed {config_file}: {exc}") from None
    except RecursionError:
        raise ModelReferenceError(f"malformed {config_file}: nested deeper than "
                                  f"{MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise ModelReferenceError(f"malformed {config_file}: expected a JSON object")
    check_sizes(data, str(config_file))
    return data


def check_sizes(config: dict[str, Any], source: str) -> None:
    """Check the nesting depth and the size keys of a parsed config and of every object
    nested in it (sub-configs); ``source`` names the file in the error.

    :raises ModelReferenceError: one line naming ``source``, the key path and the rule.
    """
    stack: list[tuple[Any, str, int]] = [(config, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelReferenceError(f"malformed {source}: nested deeper than {MAX_DEPTH} "
                                      "levels")
        if isinstance(value, dict):
            _check_object(value, where, source)
            items = [(f"{where}{key}", item) for key, item in value.items()]
        elif isinstance(value, list):
            items = [(f"{where.rstrip('.')}[{i}]", item) for i, item in enumerate(value)]
        else:
            continue
        stack.extend((item, f"{path}.", depth + 1) for path, item in items
                     if isinstance(item, (dict, list)))


def _check_object(values: dict[str, Any], where: str, source: str) -> None:
    """Check the size keys of one (sub-)config."""
    for key, (low, high) in SIZE_LIMITS.items():
        value = values.get(key)
        items = value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                continue
            if isinstance(item, float) and item.is_integer():
                item = int(item)  # 1200.0: left to transformers' own field types
            if not isinstance(item, int) or isinstance(item, bool):
                raise ModelReferenceError(f"malformed {source}: {where}{key} must be an "
                                          f"integer, not {_kind(item)}")
            if not low <= item <= high:
                raise ModelReferenceError(f"malformed {source}: {where}{key} is {item}; it "
                                          f"must be between {low} and {high:,}")


def _kind(value: Any) -> str:
    """How a JSON value is described in an error (short; the value itself only if short)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 20 else "a string"
    if isinstance(value, float):
        return f"the number {value!r}"
    return "an object" if isinstance(value, dict) else "a list"

