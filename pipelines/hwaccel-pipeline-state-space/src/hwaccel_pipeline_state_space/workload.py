"""The state-space workload: the text workload plus a measurement of the recurrent state.

Loading, inputs, the timed forward (no cache) and generation are the text workload's. What
this class adds is the defining property of the pipeline: :meth:`state_size` runs a prompt with
``use_cache=True`` and measures, in bytes, the cache object the model returns
(``cache_params``, ``past_key_values`` or RWKV's ``state``), split into the recurrent part
(SSM/RNN states, convolution windows) and the attention part (key/value tensors of attention
layers). A pure SSM has only the first, and it does not grow with the prompt; a hybrid with
attention layers (Jamba, Zamba, ...) also keeps a KV cache that does. Which layers are
attention layers comes from the config's ``layer_types``, so a test can check the measured
cache against what the config declares.

On a machine without the ``mamba_ssm`` / ``causal_conv1d`` kernels transformers runs the plain
PyTorch path and logs a notice once per process; the workload keeps that notice out of the
output and exposes it as :attr:`StateSpaceWorkload.kernel_fallbacks`.

``tiny:`` configs get state-space-specific fixes, named in
:meth:`StateSpaceWorkload.tiny_config`.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from hwaccel_pipeline_text.workload import TextWorkload

CACHE_OUTPUTS = ("cache_params", "past_key_values", "state")
# attributes of cache objects that hold attention keys and values (everything else is state)
ATTENTION_FIELDS = frozenset({"keys", "values", "key_cache", "value_cache"})
LAYER_PATTERN_KEYS = ("layers_block_type", "layer_types", "block_types")
_DEPTH_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_blocks")
_FALLBACK_NOTICE = "falling back to its reference PyTorch implementation"
_KERNEL_LOGGER = "transformers.integrations.hub_kernels"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _KernelFallbackNotes(logging.Filter):
    """Keeps transformers' "kernel not installed, using plain PyTorch" notices, unprinted."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _FALLBACK_NOTICE in message:
            self.messages.append(message)
            return False
        return True


_NOTES = _KernelFallbackNotes()


def _keep_layer_kinds(values: dict[str, Any], default: dict[str, Any], depth: int,
                      overrides: dict[str, Any]) -> None:
    """Keep one layer of every kind the default pattern has (fix 2 below)."""
    for key in [k for k in values if k.endswith("_layer_offset")]:
        period_key = key[: -len("offset")] + "period"
        offset, period = _int(values.get(key)), _int(values.get(period_key))
        if offset is not None and period and offset >= depth:
            overrides[period_key], overrides[key] = depth, depth - 1
    for key in LAYER_PATTERN_KEYS:
        pattern, full = values.get(key), default.get(key)
        if not (isinstance(pattern, list) and pattern and isinstance(full, list)):
            continue
        layers = (pattern * depth)[:depth]
        missing = [kind for kind in dict.fromkeys(full) if kind not in layers]
        if missing and len(missing) < depth:
            overrides[key] = layers[: depth - len(missing)] + missing


def _state_space_fixes(values: dict[str, Any], default: dict[str, Any],
                       overrides: dict[str, Any]) -> None:
    """Fix 2 of :meth:`StateSpaceWorkload.tiny_config`, added to ``overrides``."""
    depth = next((values[k] for k in _DEPTH_KEYS if _int(values.get(k))), 1)
    _keep_layer_kinds(values, default, depth, overrides)


def _tensor_bytes(obj: Any, kind: str, sizes: dict[str, int], seen: set[int],
                  depth: int = 0) -> None:
    """Add the bytes of every tensor reachable from ``obj`` to ``sizes[kind]``.

    Zero-dimensional tensors are left out: they are the cache's bookkeeping (transformers 5.25
    keeps a position counter per linear-attention layer), not state of the sequence.
    """
    import torch

    if id(obj) in seen or depth > 8:
        return
    seen.add(id(obj))
    if torch.is_tensor(obj):
        if obj.dim() > 0:
            sizes[kind] += obj.numel() * obj.element_size()
        return
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    elif hasattr(obj, "__dict__") and not isinstance(obj, (torch.nn.Module, type)):
        items = list(vars(obj).items())
    else:
        return
    for name, value in items:
        part = "attention" if name in ATTENTION_FIELDS else kind
        _tensor_bytes(value, part, sizes, seen, depth + 1)


class StateSpaceWorkload(TextWorkload):
    """Workload of the ``state-space`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    keeps_recurrent_state = True
    """The model keeps a fixed-size recurrent state (what hwaccel's footprint estimate
    counts from the config, :func:`hwaccel.estimates.footprint.recurrent_state_of`)."""

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """The core's tiny config of the model type with the fixes a state-space model needs.

        1. Rebuilt through the config class (as the core does), so sizes the class derives
           from others follow the shrunk ones (RWKV's ``attention_hidden_size``, Mamba's
           ``time_step_rank``, Jamba's ``mamba_dt_rank``...).
           (Mamba2-style mixers keeping ``heads * head_dim == expand * hidden_size`` is
           the core's: :func:`hwaccel.kit.tiny_couplings.mamba2_heads`.)
        2. Hybrids keep every layer kind of their default pattern: with two layers Jamba's
           attention layer (period 8, offset 4) or Zamba's hybrid layers would vanish.
           Period / offset pairs and per-layer pattern lists are adjusted so the last layers
           carry the missing kinds.
        """
        from hwaccel.kit.tiny import tiny_config

        return tiny_config(self.ref.model_type or "", keep, _state_space_fixes)

    @property
    def kernel_fallbacks(self) -> list[str]:
        """transformers' notices, in this process, of kernels replaced by plain PyTorch."""
        return list(_NOTES.messages)

    @cached_property
    def layer_kinds(self) -> tuple[str, ...]:
        """The config's per-layer kinds (``layer_types``); empty when it declares none."""
        kinds = getattr(self.text_config, "layer_types", None)
        return tuple(kinds) if isinstance(kinds, (list, tuple)) else ()

    @property
    def attention_layer_count(self) -> int:
        """Layers the config gives an attention KV cache (full, sliding or hybrid)."""
        return sum(1 for kind in self.layer_kinds
                   if kind == "hybrid" or ("attention" in kind and kind != "linear_attention"))

    def prepare(self) -> None:
        """Keep kernel-fallback notices out of the output, then the text workload's set-up."""
        logger = logging.getLogger(_KERNEL_LOGGER)
        if _NOTES not in logger.filters:
            logger.addFilter(_NOTES)
        super().prepare()

    def load_model(self) -> Any:
        """The text workload's model, with kernel-fallback notices kept out of the output."""
        self.prepare()
        return super().load_model()

    def state_size(self, model: Any, inputs: dict[str, Any]) -> dict[str, int]:
        """Bytes of the cache a prompt leaves behind: ``recurrent`` and ``attention`` parts.

        Runs ``inputs`` once with ``use_cache=True`` and walks the returned cache object:
        tensors under ``keys``/``values`` (attention layers) count as attention, every other
        tensor (SSM and convolution states, RWKV's state) as recurrent state.
        """
        import torch

        from hwaccel.errors import HwaccelError

        with torch.inference_mode():
            outputs = model(**inputs, use_cache=True)
        cache = next((outputs[name] for name in CACHE_OUTPUTS
                      if outputs.get(name) is not None), None)
        if cache is None:
            raise HwaccelError(f"{type(model).__name__} returned no cache with use_cache=True")
        sizes = {"recurrent": 0, "attention": 0}
        _tensor_bytes(cache, "recurrent", sizes, set())
        return sizes
