"""What a model needs, computed from the model itself: no device, no measurement.

* **Parameters** are counted exactly by building the workload's model on the meta device
  from its config (:meth:`~hwaccel.kit.workloads.Workload.skeleton`): no weights are allocated
  or read. Shared (tied) parameters count once; floating-point parameters and buffers scale
  with the precision a backend runs, integer buffers keep their own size. Each further use
  Tied word embeddings are counted once more apart: a converted graph (an ONNX export)
  stores the language-model head's transposed copy beside the embedding.
* **The checkpoint** on disk, when the model's files are local: the files transformers would
  load, each once (:mod:`hwaccel.models.checkpoint_files`: one format, an index's shards); the
  tensors of ``*.safetensors`` files are read from their headers (``safetensors.safe_open``),
  other weight files (``.bin``, ``.pt``) count by their size.
* **The KV cache** of generative models: per attention layer, keys and values of
  ``kv_heads x head_dim`` per token (for latent attention the compressed ``kv_lora_rank``
  plus the rotary part, once for all heads), for the sequence, or the sliding window (less
  the current token) on layers that slide; an encoder-decoder model adds cross-attention
  keys and values over the encoder's tokens.
  Layers of a state-space model (``linear_attention``, ``mamba``) keep a fixed-size state
  instead, which does not grow with the sequence.
* **The largest transient activation and the logits** for one call on the workload's own
  inputs: for each token stream (text tokens, image patches, audio frames, latent pixels),
  tokens x (the feed-forward width + twice the model width), the largest stream counting; plus
  the logits of a language-model head (tokens x vocabulary) and the inputs themselves.

Everything here is computed from configs and shapes; the runtime's own memory is measured
elsewhere (:mod:`hwaccel.estimates.calibration`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.errors import ModelReferenceError
from hwaccel.models.checkpoint_files import checkpoint_files, read_safetensors_header

#: bytes per element of each precision name hwaccel uses (and OpenVINO's element types)
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "f32": 4, "f16": 2}
_LAYERS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_DECODER_LAYERS = ("decoder_layers", "num_decoder_layers")
_HEADS = ("num_attention_heads", "n_head", "num_heads", "n_heads")
_DECODER_HEADS = ("decoder_attention_heads",)
_KV_HEADS = ("num_key_value_heads", "num_kv_heads", "multi_query_group_num")
_WIDTH = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim")
_INNER = ("intermediate_size", "encoder_ffn_dim", "d_ff", "n_inner", "ffn_dim",
          "decoder_ffn_dim")
_CONTEXT = ("max_position_embeddings", "n_positions", "max_sequence_length",
            "max_target_positions")
_NO_CACHE_LAYERS = ("linear_attention", "mamba", "conv", "rwkv", "ssm")


def _int(config: Any, names: tuple[str, ...]) -> int | None:
    """The first of ``names`` that ``config`` holds as a positive int."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class Checkpoint:
    """A model's weight files on disk."""

    files: int
    bytes: int
    parameters: int | None  # tensors' elements, when every file is safetensors
    dtypes: tuple[str, ...]
    source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"files": self.files, "bytes": self.bytes, "parameters": self.parameters,
                "dtypes": list(self.dtypes), "source": self.source}


def checkpoint_of(folder: str | Path) -> Checkpoint | None:
    """The checkpoint in ``folder``: its weight files as
    :func:`~hwaccel.models.checkpoint_files.checkpoint_files` chooses them (one format, an index's
    shards once each), their bytes, and their tensors' elements when all are safetensors.

    ``None`` when the folder holds no weight file (a config alone).

    :raises ModelReferenceError: a broken index or safetensors header (one line): the
        checkpoint cannot be loaded as it is.
    """
    files = checkpoint_files(folder)
    if not files:
        return None
    parameters = 0
    dtypes: set[str] = set()
    tensors = [p for p in files if p.suffix == ".safetensors"]
    for path in tensors:
        try:
            header = read_safetensors_header(path)
        except ValueError as exc:
            raise ModelReferenceError(f"unusable checkpoint: {exc}") from None
        for entry in header.values():
            parameters += math.prod(entry["shape"])
            dtypes.add(entry["dtype"])
    exact = len(tensors) == len(files)
    return Checkpoint(files=len(files), bytes=sum(p.stat().st_size for p in files),
                      parameters=parameters if exact else None,
                      dtypes=tuple(sorted(dtypes)),
                      source="safetensors headers" if exact else "file sizes")


@dataclass(frozen=True)
class KVCache:
    """The per-token cache shape of a generative model's attention layers."""

    full_layers: int  # layers whose cache grows with the whole sequence
    sliding_layers: int  # layers that keep at most ``window`` tokens
    window: int | None
    key_width: int  # elements of keys per token per layer (heads x head dim)
    value_width: int
    cross_layers: int = 0  # decoder layers attending over the encoder's tokens
    cross_width: int = 0

    def bytes(self, batch: int, seq_len: int, encoder_tokens: int, dtype_bytes: int) -> int:
        """Bytes of the cache after ``seq_len`` tokens for ``batch`` sequences."""
        per_token = self.key_width + self.value_width
        # a sliding layer keeps the window less the token being computed (transformers'
        # DynamicSlidingWindowLayer keeps sliding_window - 1 tokens)
        window = min(seq_len, self.window - 1) if self.window else seq_len
        tokens = self.full_layers * seq_len + self.sliding_layers * window
        cross = self.cross_layers * 2 * self.cross_width * encoder_tokens
        return batch * dtype_bytes * (per_token * tokens + cross)


@dataclass(frozen=True)
class Activations:
    """One call's largest transient activation, its logits and inputs, per sample."""

    transient_elements: int
    logits_elements: int
    input_bytes: int
    encoder_tokens: int  # what cross-attention caches attend over (0 without an encoder)
    streams: tuple[str, ...]  # how the streams were sized, for the output

    def bytes(self, batch: int, dtype_bytes: int) -> int:
        """Bytes of the activations of one call on ``batch`` samples."""
        return batch * ((self.transient_elements + self.logits_elements) * dtype_bytes
                        + self.input_bytes)


@dataclass(frozen=True)
class Footprint:
    """What a model needs, independent of the device (see the module docstring)."""

    model: str
    model_class: str
    float_elements: int  # floating-point parameter and buffer elements (scale with dtype)
    fixed_bytes: int  # integer buffers and parameters, whatever the precision
    parameters: int
    counted_by: str
    seq_len: int
    activations: Activations
    checkpoint: Checkpoint | None = None
    kv: KVCache | None = None
    recurrent_state_elements: int | None = None  # fixed-size state of a state-space model
    context_length: int | None = None
    lm_head: int | None = None  # outputs of a language-model head: logits per token
    notes: tuple[str, ...] = field(default=())
    tied_float_elements: int = 0  # a language-model head tied to the input embeddings

    def weight_bytes(self, precision: str, *, untied: bool = False) -> int:
        """Bytes of the parameters and buffers held at ``precision``; ``untied`` counts tied
        word embeddings twice, as a converted graph that stores the head's copy apart."""
        floating = self.float_elements + (self.tied_float_elements if untied else 0)
        return floating * DTYPE_BYTES[precision] + self.fixed_bytes

    def activation_bytes(self, batch: int, precision: str) -> int:
        """Bytes of one call's activations and logits on ``batch`` samples."""
        return self.activations.bytes(batch, DTYPE_BYTES[precision])

    def kv_cache_bytes(self, batch: int, precision: str, seq_len: int | None = None) -> int:
        """Bytes of the KV cache after ``seq_len`` tokens (default: the footprint's)."""
        if self.kv is None:
            return 0
        return self.kv.bytes(batch, seq_len or self.seq_len, self.activations.encoder_tokens,
                             DTYPE_BYTES[precision])

    def state_bytes(self, batch: int) -> int:
        """Bytes of a state-space model's recurrent state (fp32, fixed in the sequence)."""
        return batch * 4 * (self.recurrent_state_elements or 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary."""
        return {"model": self.model, "model_class": self.model_class,
                "parameters": self.parameters, "counted_by": self.counted_by,
                "weights_fp32_bytes": self.weight_bytes("fp32"),
                "tied_weights_fp32_bytes": 4 * self.tied_float_elements,
                "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
                "kv_cache_per_token_bytes_fp32": (
                    self.kv.bytes(1, 1, 0, 4) if self.kv else 0),
                "recurrent_state_bytes": self.state_bytes(1) or None,
                "activation_streams": list(self.activations.streams),
                "context_length": self.context_length, "notes": list(self.notes)}


# ---- parameters ------------------------------------------------------------------------------


def count_tensors(module: Any) -> tuple[int, int, int]:
    """(floating elements, fixed bytes, parameters) of a module's unique parameters and
    buffers; tied tensors count once."""
    seen: dict[int, Any] = {}
    for tensor in (*module.parameters(), *module.buffers()):
        seen.setdefault(id(tensor), tensor)
    params = {id(p) for p in module.parameters()}
    floating = fixed = count = 0
    for key, tensor in seen.items():
        if key in params:
            count += tensor.numel()
        if tensor.is_floating_point():
            floating += tensor.numel()
        else:
            fixed += tensor.numel() * tensor.element_size()
    return floating, fixed, count


def tied_float_elements(module: Any) -> int:
    """Elements of the language-model head's weight when it is the input embedding's tensor
    (tied word embeddings): an exported graph stores the head's transposed copy apart (the
    embedding's lookups share the original), so it holds these once more."""
    weight = getattr(_embeddings(module, "get_output_embeddings"), "weight", None)
    if weight is None or weight is not getattr(_embeddings(module, "get_input_embeddings"),
                                               "weight", None):
        return 0
    return weight.numel() if weight.is_floating_point() else 0


def _embeddings(module: Any, getter: str) -> Any:
    """A model's input or output embeddings, or None where it has none (transformers raises
    NotImplementedError for models without, such as ResNet)."""
    try:
        return getattr(module, getter, lambda: None)()
    except (NotImplementedError, AttributeError):
        return None


# ---- the KV cache ----------------------------------------------------------------------------


def _decoder_config(config: Any) -> Any:
    """The config of the part that generates: a composite config's ``decoder`` or text
    sub-config, else the config itself (an encoder-decoder model keeps both in one)."""
    decoder = getattr(config, "decoder", None)
    if callable(getattr(decoder, "to_dict", None)):
        return decoder
    getter = getattr(config, "get_text_config", None)
    return getter() if getter is not None else config


def kv_cache_of(config: Any) -> KVCache | None:
    """The KV cache shape of a generative model's config, ``None`` when it caches nothing."""
    text = _decoder_config(config)
    encoder_decoder = bool(getattr(text, "is_encoder_decoder", False))
    layers = (_int(text, _DECODER_LAYERS) if encoder_decoder else None) or _int(text, _LAYERS)
    heads = (_int(text, _DECODER_HEADS) if encoder_decoder else None) or _int(text, _HEADS)
    width = _int(text, _WIDTH)
    if not layers or not heads:
        return None
    kv_heads = _int(text, _KV_HEADS) or (1 if getattr(text, "multi_query", False) else heads)
    head_dim = _int(text, ("head_dim", "d_kv")) or (width // heads if width else None)
    latent, rope = _int(text, ("kv_lora_rank",)), _int(text, ("qk_rope_head_dim",))
    if latent and rope:  # latent attention: the compressed keys and values and the rotary
        key_width, value_width = latent + rope, 0  # part are cached, once for all heads
    elif head_dim:
        key_width = value_width = kv_heads * head_dim
    else:
        return None
    kinds = getattr(text, "layer_types", None) or getattr(text, "layers_block_type", None)
    window = _int(text, ("sliding_window", "attention_window_size"))
    if isinstance(kinds, (list, tuple)) and kinds:
        kinds = [str(k) for k in kinds][:layers]
        cached = [k for k in kinds if not any(n in k for n in _NO_CACHE_LAYERS)
                  or k == "hybrid"]
        sliding = sum(1 for k in cached if "sliding" in k or "chunked" in k)
        full, sliding_layers = len(cached) - sliding, sliding
    elif window and getattr(text, "use_sliding_window", True) is not False:
        full, sliding_layers = 0, layers
    else:
        full, sliding_layers = layers, 0
    if full + sliding_layers == 0:
        return None
    cross = layers if encoder_decoder else 0
    return KVCache(full_layers=full, sliding_layers=sliding_layers,
                   window=window if sliding_layers else None, key_width=key_width,
                   value_width=value_width, cross_layers=cross,
                   cross_width=kv_heads * (head_dim or 0) if cross else 0)


def recurrent_state_of(config: Any) -> int | None:
    """Elements of a state-space model's recurrent state per sequence, when the config
    declares a Mamba-style state (``state_size``, ``conv_kernel``, the inner width)."""
    text = _decoder_config(config)
    state = _int(text, ("state_size", "ssm_state_size", "mamba_d_state"))
    conv = _int(text, ("conv_kernel", "mamba_d_conv"))
    inner = _int(text, ("intermediate_size", "mamba_expand"))
    layers = _int(text, _LAYERS)
    if not (state and conv and inner and layers):
        return None
    if inner < (_int(text, _WIDTH) or 0):  # an expansion factor, not a width
        inner *= _int(text, _WIDTH) or 0
    kinds = getattr(text, "layers_block_type", None) or getattr(text, "layer_types", None)
    if isinstance(kinds, (list, tuple)) and kinds:
        layers = sum(1 for k in kinds if any(n in str(k) for n in ("mamba", "linear")))
    return layers * inner * (state + conv)


# ---- activations -----------------------------------------------------------------------------


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def _stream(config: Any, tokens: int, what: str, streams: list[str]) -> int:
    """Transient elements of one token stream through the config's layers."""
    width = _int(config, _WIDTH) or 0
    inner = _int(config, _INNER) or 4 * width
    streams.append(f"{what}: {tokens} tokens x ({inner} + 2 x {width})")
    return tokens * (inner + 2 * width)


def _sub(config: Any, name: str) -> Any:
    return getattr(config, name, None) or config


def activations_of(config: Any, inputs: dict[str, Any], vocab: int | None,
                   components: dict[str, Any] | None = None) -> Activations:
    """One sample's activations for the workload's ``inputs`` (built at batch 1).

    :param config: the transformers config (``None`` for diffusers models).
    :param vocab: the outputs of the model's language-model head (``None`` without one).
    :param components: diffusers component configs (``unet``) when there is no config.
    """
    streams: list[str] = []
    largest = 0
    out_tokens = 0
    encoder_tokens = 0
    input_bytes = 0
    for name, value in inputs.items():
        shape = _shape(value)
        if not shape:
            continue
        input_bytes += math.prod(shape) * value.element_size()
        if name in ("input_ids", "question_ids") and config is not None:
            text = config.get_text_config() if hasattr(config, "get_text_config") else config
            largest = max(largest, _stream(text, shape[-1], name, streams))
            out_tokens = max(out_tokens, shape[-1])
            if getattr(text, "is_encoder_decoder", False):
                encoder_tokens = max(encoder_tokens, shape[-1])
        elif name == "decoder_input_ids" and config is not None:
            text = _decoder_config(config)
            largest = max(largest, _stream(text, shape[-1], name, streams))
            out_tokens = shape[-1]
        elif name == "pixel_values" and config is not None and len(shape) == 4:
            vision = _sub(config, "vision_config")
            patch = _int(vision, ("patch_size",))
            height, width = shape[-2:]
            if patch:
                tokens = (height // patch) * (width // patch) + 1
                largest = max(largest, _stream(vision, tokens, "image patches", streams))
            else:
                channels = (getattr(vision, "hidden_sizes", None) or [None])[0] or \
                    _int(vision, ("embedding_size", "num_channels")) or shape[1]
                tokens = height * width // 4
                streams.append(f"image: {tokens} pixels x 3 x {channels} channels")
                largest = max(largest, 3 * tokens * int(channels))
        elif name in ("input_features", "input_values") and config is not None:
            audio = _sub(config, "audio_config")
            if name == "input_features":  # log-mel frames, halved by the first convolution
                tokens = min(shape[-1] // 2, _int(audio, ("max_source_positions",)) or
                             shape[-1])
            else:  # raw samples through the convolutional feature encoder's strides
                strides = getattr(audio, "conv_stride", None) or [1]
                tokens = shape[-1] // max(1, math.prod(int(s) for s in strides))
            largest = max(largest, _stream(audio, tokens, "audio frames", streams))
            encoder_tokens = max(encoder_tokens, tokens)
        elif name == "latents" and len(shape) == 4 and components:
            unet = components.get("unet") or components.get("transformer") or {}
            channels = (unet.get("block_out_channels") or [shape[1]])[0]
            tokens = shape[-2] * shape[-1]
            streams.append(f"latents: {tokens} pixels x 3 x {channels} channels")
            largest = max(largest, 3 * tokens * int(channels))
    logits = 0
    if vocab and out_tokens:
        logits = out_tokens * int(vocab)
        streams.append(f"logits: {out_tokens} tokens x {vocab}")
    return Activations(transient_elements=largest, logits_elements=logits,
                       input_bytes=input_bytes, encoder_tokens=encoder_tokens,
                       streams=tuple(streams))


# ---- the whole footprint ---------------------------------------------------------------------


def lm_head_size(skeleton: Any) -> int | None:
    """The outputs of a model's language-model head (its vocabulary), if it has one."""
    head = _embeddings(skeleton, "get_output_embeddings")
    size = getattr(head, "out_features", None) if head is not None else None
    return int(size) if isinstance(size, int) else None


def footprint_of(workload: Any, seq_len: int, *, like: Footprint | None = None) -> Footprint:
    """Compute the footprint of a prepared workload's model for calls of ``seq_len``.

    A workload whose ``keeps_recurrent_state`` is true (a state-space model's) gets its
    recurrent state counted from the config.

    :param like: the footprint of the same workload at another length: its counts are
        kept and only what depends on the length is computed (no second meta build).
    """
    config = getattr(workload, "config", None)
    if like is None:
        skeleton = workload.skeleton()
        floating, fixed, parameters = count_tensors(skeleton)
        like = Footprint(
            model=workload.ref.spec, model_class=type(skeleton).__name__,
            float_elements=floating, fixed_bytes=fixed, parameters=parameters,
            counted_by=f"{type(skeleton).__name__} built on the meta device from its config",
            seq_len=0, activations=Activations(0, 0, 0, 0, ()),
            checkpoint=_checkpoint(workload.ref), lm_head=lm_head_size(skeleton),
            tied_float_elements=tied_float_elements(skeleton))
    components = getattr(workload, "components", None)
    activations = activations_of(config, workload.make_inputs(1, seq_len), like.lm_head,
                                 components if isinstance(components, dict) else None)
    generative = workload.classification.family == "text_generation" or bool(
        config is not None and getattr(_decoder_config(config), "is_encoder_decoder", False)) \
        or (workload.classification.subfamily or "").endswith("_generation")
    kv = kv_cache_of(config) if generative and config is not None else None
    recurrent = getattr(workload, "keeps_recurrent_state", False)
    state = recurrent_state_of(config) if recurrent and config is not None else None
    notes = ["recurrent state of fixed size: it does not grow with the sequence"] if state \
        else []
    context = _int(_decoder_config(config), _CONTEXT) if config is not None else None
    return dataclasses.replace(like, seq_len=seq_len, activations=activations, kv=kv,
                               recurrent_state_elements=state, context_length=context,
                               notes=tuple(notes))


def _checkpoint(ref: Any) -> Checkpoint | None:
    """The weight files of a reference's folders (both parts of a composition)."""
    folders = [part.path for part in (ref.components or (ref,)) if part.path]
    checkpoints = [c for c in (checkpoint_of(f) for f in folders) if c is not None]
    if not checkpoints:
        return None
    known = [c.parameters for c in checkpoints]
    return Checkpoint(
        files=sum(c.files for c in checkpoints), bytes=sum(c.bytes for c in checkpoints),
        parameters=sum(k for k in known if k is not None)
        if all(k is not None for k in known) else None,
        dtypes=tuple(sorted({d for c in checkpoints for d in c.dtypes})),
        source="; ".join(dict.fromkeys(c.source for c in checkpoints)))
