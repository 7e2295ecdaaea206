"""Decoder-only causal LMs on OpenVINO with the KV cache inside the graph (a stateful model).

The PyTorch model is exported through a wrapper whose inputs are ``input_ids``,
``attention_mask``, ``position_ids`` (when the model's forward takes them) and the past keys
and values of every layer as flat tensors ``past.<i>.key``/``past.<i>.value``, and whose
outputs are the last position's ``logits`` and the present keys and values
``present.<i>.key``/``present.<i>.value``. Inside the wrapper the flat tensors become the
``DynamicCache`` transformers' attention layers update. The graph is traced by
``openvino.convert_model`` with dynamic batch, sequence and past axes, then:

- a ``beam_idx`` input gathers each past tensor along the batch (always ``0..batch-1`` here,
  as greedy decoding keeps its rows): the CPU plugin fuses ReadValue, Gather, Concat and
  ScaledDotProductAttention into one attention node that appends to the cache in place only
  when that Gather is there (this is the graph optimum-intel exports);
- ``apply_make_stateful_transformation`` pairs each past input with its present output, so
  the keys and values stay in the infer request's state between calls;
- each state starts as zeros of shape ``(batch, heads, 0, head_dim)``, the batch read from
  ``input_ids``, so a reset state is an empty cache of the batch fed next.

Decoding resets the state, runs the prompt once (prefill), then one token per call with the
attention mask grown by one and the position ids advanced by one, as transformers' generate
computes them (``cumsum(mask) - 1``, padding at 0).

While tracing, transformers' SDPA masks let a query that every key masks (a left-padding
position) attend to all keys instead: OpenVINO's attention turns a fully masked row into NaN,
which the padded position's keys and values would then carry into every later step. Those
positions' outputs are never read, so the real rows compute what PyTorch computes.

The stateful IR is cached like the forward graphs (:func:`hwaccel_openvino.convert.cache_key`
with the model's identity), under ``cache_dir()/openvino/<key>/``; for ``int8`` and ``int4``
its weights are compressed by NNCF (:func:`hwaccel_openvino.weights.compress`) and cached
under their own key. It is compiled with the forward graphs' properties, and for ``fp32``
with ``KV_CACHE_PRECISION`` f32: once attention is fused with the cache, the CPU plugin
otherwise keeps keys and values in u8. Models this export does not
cover (encoder-decoder, state-space, multimodal inputs, sliding-window or other non-plain
cache layers, a failed conversion) are named by :func:`unsupported_reason` or the conversion's
message, and generation falls back to re-running the sequence
(:mod:`hwaccel_openvino.generation`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import BACKEND, stage
from hwaccel_openvino.convert import (
    CallSpec,
    cache_key,
    cache_root,
    one_line,
    read_cached,
    store_entry,
)

STATEFUL_FORMAT = 1
STATEFUL = "stateful"
PROMPT_INPUTS = ("input_ids", "attention_mask")
# the model's forward call while exporting: batch 1, a past of 3 positions, 2 new tokens
_EXAMPLE_PAST, _EXAMPLE_NEW = 3, 2
_decoders: weakref.WeakKeyDictionary[Any, StatefulDecoder | str] = weakref.WeakKeyDictionary()


def unsupported_reason(source: Any, inputs: tuple[str, ...] = PROMPT_INPUTS) -> str | None:
    """Why ``source`` cannot decode through a stateful graph with ``inputs``, or ``None``.

    :param source: the PyTorch model.
    :param inputs: the tensor inputs generation was given besides the cache.
    """
    config = getattr(source, "config", None)
    name = type(source).__name__
    if config is None:
        return f"{name} has no transformers config to build a cache from"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models decode without a cache on OpenVINO"
    extra = [n for n in inputs if n not in PROMPT_INPUTS]
    if extra:
        return (f"the stateful graph takes input_ids and attention_mask only, not "
                f"{', '.join(extra)}")
    parameters = inspect.signature(source.forward).parameters
    if "cache" not in parameters:
        return f"{name}.forward takes no `cache` (a state-space or custom cache)"
    from transformers.cache_utils import DynamicCache, DynamicLayer

    try:
        layers = DynamicCache(config=config).layers
    except Exception as exc:  # noqa: BLE001 - a config transformers cannot build a cache for
        return f"transformers builds no DynamicCache for {name}: {one_line(exc, 200)}"
    kinds = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if kinds:
        return (f"{name}'s cache has {', '.join(kinds)} layers; only full-attention "
                "DynamicLayer caches are exported statefully")
    return None


@functools.cache
def _export_class() -> type:
    import torch

    class CacheExport(torch.nn.Module):
        """The model with its past keys and values as flat inputs and outputs.

        ``forward(input_ids, attention_mask[, position_ids], past.0.key, past.0.value, ...)``
        returns ``(logits of the last position, present.0.key, present.0.value, ...)``.
        """

        def __init__(self, model: Any, takes_position_ids: bool):
            super().__init__()
            self.model = model
            self.takes_position_ids = takes_position_ids
            self.keeps_logits = "logits_to_keep" in inspect.signature(
                model.forward).parameters

        def forward(self, input_ids: Any, attention_mask: Any, *rest: Any) -> tuple[Any, ...]:
            from transformers.cache_utils import DynamicCache

            position = {"position_ids": rest[0]} if self.takes_position_ids else {}
            past = rest[1:] if self.takes_position_ids else rest
            cache = DynamicCache(config=self.model.config)
            for layer, key, value in zip(cache.layers, past[0::2], past[1::2], strict=True):
                layer.lazy_initialization(key, value)
                layer.keys, layer.values = key, value
            keep = {"logits_to_keep": 1} if self.keeps_logits else {}
            output = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                cache=cache, use_cache=True, **position, **keep)
            present = [t for layer in output.cache.layers for t in (layer.keys, layer.values)]
            return (output.logits[:, -1:, :], *present)

    return CacheExport


@contextlib.contextmanager
def _finite_padding_masks() -> Iterator[None]:
    """While tracing: SDPA masks in which a fully masked query row attends to every key."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    mapping = ALL_MASK_ATTENTION_FUNCTIONS._global_mapping
    real = mapping["sdpa"]

    def sdpa_mask(*args: Any, **kwargs: Any) -> Any:
        mask = real(*args, **kwargs)
        return mask if mask is None else mask | ~mask.any(dim=-1, keepdim=True)

    mapping["sdpa"] = sdpa_mask
    try:
        yield
    finally:
        mapping["sdpa"] = real


def _example(source: Any, takes_position_ids: bool) -> tuple[list[Any], int]:
    """Example inputs for tracing (a real past from the model) and the number of layers."""
    import torch

    vocab = int(source.get_input_embeddings().num_embeddings)
    ids = torch.arange(_EXAMPLE_PAST + _EXAMPLE_NEW).remainder(vocab)[None]
    with torch.no_grad():
        cache = source(input_ids=ids[:, :_EXAMPLE_PAST], use_cache=True).cache
    past = [t.detach().clone() for layer in cache.layers for t in (layer.keys, layer.values)]
    total = _EXAMPLE_PAST + _EXAMPLE_NEW
    tensors = [ids[:, _EXAMPLE_PAST:].clone(), torch.ones(1, total, dtype=torch.long)]
    if takes_position_ids:
        tensors.append(torch.arange(_EXAMPLE_PAST, total)[None])
    return tensors + past, len(cache.layers)


def _add_beam_gather(ov_model: Any, past_names: list[str]) -> None:
    """Gather every past input along the batch by a new ``beam_idx`` input."""
    import openvino
    from openvino import opset13

    beam = opset13.parameter(openvino.PartialShape([-1]), openvino.Type.i32, name="beam_idx")
    beam.output(0).get_tensor().set_names({"beam_idx"})
    ov_model.add_parameters([beam])
    for name in past_names:
        port = ov_model.input(name)
        consumers = port.get_target_inputs()
        gather = opset13.gather(port, beam, opset13.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(gather.output(0))
    ov_model.validate_nodes_and_infer_types()


def _empty_state_initializers(ov_model: Any) -> None:
    """Start each state as zeros ``(batch of input_ids, heads, 0, head_dim)``."""
    import numpy as np
    from openvino import opset13

    shape = opset13.shape_of(ov_model.input("input_ids"), output_type="i64")
    batch = opset13.gather(shape, opset13.constant([0]), opset13.constant(0))
    for op in ov_model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        dims = [batch] + [opset13.constant(np.array([d.get_length() if d.is_static else 0],
                                                    dtype=np.int64))
                          for d in list(op.get_output_partial_shape(0))[1:]]
        zero = opset13.constant(0.0, dtype=op.get_output_element_type(0))
        op.set_arguments([opset13.broadcast(zero, opset13.concat(dims, axis=0))])
    ov_model.validate_nodes_and_infer_types()


def _trace(source: Any) -> tuple[Any, list[str], int]:
    """``source`` with its cache as flat inputs and outputs, traced by OpenVINO's converter
    (dynamic batch, sequence and past axes); the names of its inputs before the cache, and
    its number of layers."""
    import openvino

    takes_position_ids = "position_ids" in inspect.signature(source.forward).parameters
    example, layers = _example(source, takes_position_ids)
    names = ["input_ids", "attention_mask"] + (["position_ids"] if takes_position_ids else [])
    shapes = [openvino.PartialShape([-1, -1])] * len(names) + [
        openvino.PartialShape([-1, int(t.shape[1]), -1, int(t.shape[3])])
        for t in example[len(names):]]
    module = _export_class()(source, takes_position_ids).eval()
    with _finite_padding_masks():
        ov_model = openvino.convert_model(module, example_input=tuple(example), input=shapes)
    return ov_model, names, layers


def convert_stateful(source: Any) -> Any:
    """Export ``source`` (a decoder-only causal LM) as a stateful ``openvino.Model``."""
    import torch
    from openvino._offline_transformations import apply_make_stateful_transformation

    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        ov_model, names, layers = _trace(source)
    past_names = [f"past.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    for port, name in zip(ov_model.inputs, names + past_names, strict=True):
        port.get_tensor().set_names({name})
    present_names = [name.replace("past.", "present.") for name in past_names]
    for port, name in zip(ov_model.outputs, ["logits"] + present_names, strict=True):
        port.get_tensor().set_names({name})
    _add_beam_gather(ov_model, past_names)
    apply_make_stateful_transformation(ov_model, dict(zip(past_names, present_names,
                                                          strict=True)))
    _empty_state_initializers(ov_model)
    return ov_model


def load_or_convert_stateful(load_source: Callable[[], Any], identity: dict[str, Any],
                             precision: str = "fp32") -> Any:
    """The stateful ``openvino.Model`` from the IR cache, else converted and stored there.

    :param load_source: returns the PyTorch model; called only when the float IR is not
        cached.
    :param identity: the model's identity in the cache key (as the forward graphs').
    :param precision: ``int8`` and ``int4`` give the IR with weights compressed by NNCF
        (:func:`hwaccel_openvino.weights.compress`), made from the float IR and cached under
        its own key, as :func:`hwaccel_openvino.convert.load_or_convert` does.
    """
    import openvino

    from hwaccel_openvino.weights import compress, is_compressed

    spec = CallSpec(names=PROMPT_INPUTS, dtypes=("int64", "int64"), shapes=((-1, -1),) * 2,
                    fixed=(("kv_cache", STATEFUL), ("stateful_format", STATEFUL_FORMAT)))
    key, parts = cache_key(identity, spec, precision)
    folder = cache_root() / key
    cached = read_cached(folder, key)
    if cached is not None:
        return cached[0]

    def build(staging: Path) -> tuple[Any, dict[str, Any], str]:
        if is_compressed(precision):
            return compress(load_or_convert_stateful(load_source, identity), precision), {
                "kind": STATEFUL}, "stateful, weights compressed"
        return convert_stateful(load_source()), {"kind": STATEFUL}, "stateful"

    store_entry(folder, key, parts, build)
    return openvino.Core().read_model(str(folder / "model.xml"))


@dataclass
class StatefulDecoder:
    """A compiled stateful decoder and its infer request (which holds the KV cache)."""

    compiled: Any
    request: Any
    input_names: frozenset[str]
    _mask: Any = field(default=None, repr=False)
    _positions: Any = field(default=None, repr=False)
    _beams: Any = field(default=None, repr=False)

    def prefill(self, input_ids: Any, attention_mask: Any | None) -> Any:
        """Empty the cache and run the prompt; return the last position's logits (batch,
        vocab) as a float torch tensor."""
        import torch

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        self.request.reset_state()
        self._mask = attention_mask.long()
        self._positions = (self._mask.cumsum(-1) - 1).masked_fill(self._mask == 0, 0)
        self._beams = torch.arange(input_ids.shape[0], dtype=torch.int32)
        return self._run(input_ids)

    def step(self, tokens: Any) -> Any:
        """Append ``tokens`` (batch,) to every row; return the next logits (batch, vocab)."""
        self._mask = _grow(self._mask)
        self._positions = self._positions[:, -1:] + 1
        return self._run(tokens[:, None])

    def _run(self, input_ids: Any) -> Any:
        import torch

        feed = {"input_ids": input_ids, "attention_mask": self._mask,
                "position_ids": self._positions[:, -input_ids.shape[1]:],
                "beam_idx": self._beams}
        feed = {name: tensor.contiguous().numpy() for name, tensor in feed.items()
                if name in self.input_names}
        with stage("inference", BACKEND):
            self.request.infer(feed)
        return torch.from_numpy(self.request.get_tensor("logits").data[:, -1, :].copy()).float()


def _grow(mask: Any) -> Any:
    """``mask`` with one more attended position per row."""
    import torch

    return torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)


def decoder_config(model: Any) -> dict[str, Any]:
    """The forward graphs' compile properties, with an fp32 KV cache for ``fp32`` (the CPU
    plugin otherwise keeps keys and values in u8 once it fuses attention with the cache)."""
    config = model.compile_properties
    if model.precision == "fp32":
        try:
            supported = {str(p) for p in model.core.get_property(model.device,
                                                                  "SUPPORTED_PROPERTIES")}
        except Exception:  # noqa: BLE001 - a device that lists nothing gets nothing more
            supported = set()
        if "KV_CACHE_PRECISION" in supported:
            config["KV_CACHE_PRECISION"] = "f32"
    return config


def build_decoder(model: Any) -> StatefulDecoder | str:
    """Convert (or read from the cache), compress for int8/int4, and compile the stateful
    graph of the ``OpenVINOModel`` ``model``; or the one-line reason the export or the
    compiler refused it. A weight-compression failure raises (it is no reason to decode
    another way)."""
    from hwaccel_openvino.weights import CompressionError

    source = functools.cache(model.pytorch_model)  # loaded once, if at all
    identity = model.identity_from(source)
    try:
        ov_model = load_or_convert_stateful(source, identity, model.precision)
    except CompressionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any export failure means: decode without cache
        return f"the stateful graph failed to convert: {one_line(exc, 240)}"
    try:
        compiled = model.core.compile_model(ov_model, model.device, decoder_config(model))
    except Exception as exc:  # noqa: BLE001 - a device that cannot run it decodes without
        return f"the stateful graph failed to compile on {model.device}: {one_line(exc, 240)}"
    return StatefulDecoder(compiled=compiled, request=compiled.create_infer_request(),
                           input_names=frozenset(p.get_any_name() for p in compiled.inputs))


def stateful_decoder(model: Any, description: Any, inputs: tuple[str, ...] = PROMPT_INPUTS
                     ) -> StatefulDecoder | str:
    """The stateful decoder of the ``OpenVINOModel`` ``model`` (built once per model), or
    the one-line reason it has none (:func:`unsupported_reason`, or the export's or the
    compiler's error).

    :param description: the PyTorch model or its stand-in (class, config, signature).
    """
    reason = unsupported_reason(description, inputs)
    if reason is not None:
        return reason
    found = _decoders.get(model)
    if found is None:
        found = _decoders[model] = build_decoder(model)
    return found


def forget(model: Any) -> None:
    """Drop the stateful decoder (or the reason) kept for the ``OpenVINOModel`` ``model``,
    freeing its compiled graph and KV cache before ``model`` itself is collected."""
    _decoders.pop(model, None)
