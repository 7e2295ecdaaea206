"""Greedy generation on OpenVINO: a stateful KV-cache decoder, or a loop that re-runs the
sequence.

Decoder-only causal LMs decode through a stateful graph (:mod:`hwaccel_openvino.stateful`):
the prompt runs once, then one token per call, the past keys and values kept in the infer
request's state. Models that graph does not cover (encoder-decoder and Whisper, multimodal
inputs, state-space or sliding-window caches, a failed export) and calls with
``use_cache=False`` decode without a cache: each step runs the whole (growing) sequence
through the graph the forward call uses (``use_cache=False``), takes the last position's
logits and appends their arg-max. Decoder-only models grow ``input_ids`` (and
``attention_mask``); encoder-decoder models keep the encoder inputs and grow
``decoder_input_ids`` from the decoder start token. Each call sets ``model.kv_cache`` to
which ran: ``"stateful"``, or ``"none: <why>"``.

The result follows transformers' ``generate(do_sample=False)``: the prompt then the new
tokens (decoder-only), the decoder start token then the new tokens (encoder-decoder), or only
the new tokens for Whisper-style models (``WhisperGenerationMixin``), whose decoder prompt is
the start token and ``<|notimestamps|>`` when the generation config names one. The logits
processors greedy decoding applies by default are applied too: ``min_new_tokens`` (no EOS
before it), ``suppress_tokens``, ``begin_suppress_tokens``, ``forced_bos_token_id`` and
``forced_eos_token_id``; a row that emits EOS afterwards is finished and padded. Generation
options this loop does not implement (sampling, beams, repetition penalties, language
detection, ...) raise ``NotImplementedError`` naming them, rather than decoding differently.

A ``streamer`` (transformers' ``BaseStreamer``) receives what transformers' generate gives
it: ``put`` of the prompt ids (the decoder prompt for encoder-decoder models), ``put`` of
each step's tokens (shape ``(batch,)``) as soon as they are chosen, then ``end()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# generation-config fields whose non-default values change greedy decoding, with defaults
UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "num_beams": 1, "num_beam_groups": 1, "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "sequence_bias": None,
    "exponential_decay_length_penalty": None, "forced_decoder_ids": None,
    "penalty_alpha": None, "guidance_scale": None, "renormalize_logits": False,
}
_WHISPER_PROMPT_OPTIONS = ("language", "task", "is_multilingual", "return_timestamps")


def _ids(value: Any) -> list[int]:
    """Token ids from an int, a list of ints or ``None``."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _first(*values: Any) -> Any:
    """The first of ``values`` that is not ``None`` (else ``None``)."""
    return next((v for v in values if v is not None), None)


def _whisper_style(source: Any) -> bool:
    """True for models whose ``generate`` returns only the new tokens (Whisper's)."""
    try:
        from transformers.models.whisper.generation_whisper import WhisperGenerationMixin
    except ImportError:
        return False
    return isinstance(source, WhisperGenerationMixin)


def _check_options(generation_config: Any, options: dict[str, Any]) -> None:
    """Raise ``NotImplementedError`` for options this greedy loop would not honour."""
    refused = []
    if options.pop("do_sample", False):
        refused.append("do_sample=True")
    for name, default in UNSUPPORTED_DEFAULTS.items():
        value = options.pop(name, getattr(generation_config, name, default))
        if value not in (default, None) and value != default:
            refused.append(f"{name}={value!r}")
    for name in list(options):
        refused.append(f"{name}={options.pop(name)!r}")
    if refused:
        raise NotImplementedError(
            "OpenVINO greedy generation does not implement " + ", ".join(refused))


def fixed_arguments(model: Any, names: set[str], description: Any = None) -> dict[str, Any]:
    """The non-tensor arguments for decoding calls with tensor inputs ``names``.

    Those of a forward call the model has already compiled with the same inputs (so
    decoding runs the graph the workload's forward ran, ``output_router_logits`` and all),
    else ``use_cache=False`` where the forward takes it.
    """
    for call in model.calls.values():
        if set(call.spec.names) == names and "logits" in call.conversion.outputs:
            return dict(call.spec.fixed)
    description = description if description is not None else model.blueprint
    parameters = inspect.signature(description.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return {"use_cache": False} if "use_cache" in parameters or takes_any else {}


@dataclass
class GreedyRules:
    """The logits processors transformers' greedy decoding applies by default, and the
    token ids they use: they pick each step's tokens from its logits."""

    max_new_tokens: int
    min_new_tokens: int
    eos: list[int]
    pad: int
    suppress: list[int]
    begin_suppress: list[int]
    forced_bos: int | None
    forced_eos: list[int]

    def choose(self, logits: Any, step: int, finished: Any) -> Any:
        """The tokens (batch,) of decoding step ``step`` from its ``logits`` (batch, vocab):
        the processed arg-max, the pad token for ``finished`` rows."""
        import torch

        logits = logits.float().clone()
        vocab = logits.shape[-1]

        def block(ids: list[int]) -> None:
            valid = [i for i in ids if 0 <= i < vocab]
            if valid:
                logits[:, valid] = -float("inf")

        if step < self.min_new_tokens:
            block(self.eos)
        block(self.suppress)
        if step == 0:
            block(self.begin_suppress)
        if step == 0 and self.forced_bos is not None:
            logits[:] = -float("inf")
            logits[:, int(self.forced_bos)] = 0
        if step == self.max_new_tokens - 1 and self.forced_eos:
            logits[:] = -float("inf")
            logits[:, self.forced_eos] = 0
        token = logits.argmax(dim=-1)
        return torch.where(finished, torch.full_like(token, int(self.pad)), token)


class RerunDecoding:
    """Decoding without a cache: every step runs the whole sequence through the forward
    graph. Called with ``None`` it runs the prompt; with a step's tokens it appends them
    first. Returns the last position's logits (batch, vocab)."""

    def __init__(self, model: Any, inputs: dict[str, Any], sequence: Any,
                 encoder_decoder: bool, description: Any):
        self.model, self.inputs, self.sequence = model, dict(inputs), sequence
        self.encoder_decoder = encoder_decoder
        self.sequence_name = "decoder_input_ids" if encoder_decoder else "input_ids"
        self.fixed = fixed_arguments(model, {*inputs, self.sequence_name}, description)

    def __call__(self, tokens: Any | None) -> Any:
        """Run the sequence, grown by ``tokens`` when given; the last logits."""
        import torch

        if tokens is not None:
            self.sequence = torch.cat([self.sequence, tokens[:, None]], dim=1)
            mask = self.inputs.get("attention_mask")
            if not self.encoder_decoder and mask is not None:
                grown = mask.new_ones(mask.shape[0], 1)
                self.inputs["attention_mask"] = torch.cat([mask, grown], dim=1)
        outputs = self.model(**self.inputs, **{self.sequence_name: self.sequence},
                             **self.fixed)
        return outputs["logits"][:, -1, :]


def _decoding(model: Any, description: Any, inputs: dict[str, Any], sequence: Any,
              encoder_decoder: bool, use_cache: bool) -> tuple[Callable[[Any], Any], str]:
    """How to run each step (the stateful decoder, else the re-run loop), and the
    ``kv_cache`` value that says which."""
    from hwaccel_openvino.stateful import STATEFUL, stateful_decoder

    if not use_cache:
        reason: Any = "generate was called with use_cache=False"
    elif encoder_decoder:
        reason = "encoder-decoder models decode without a cache on OpenVINO"
    else:
        reason = stateful_decoder(model, description, ("input_ids", *inputs))
    if isinstance(reason, str):
        rerun = RerunDecoding(model, inputs, sequence, encoder_decoder, description)
        return rerun, f"none: {reason}"
    decoder = reason
    mask = inputs.get("attention_mask")

    def stateful(tokens: Any | None) -> Any:
        return decoder.prefill(sequence, mask) if tokens is None else decoder.step(tokens)

    return stateful, STATEFUL


def greedy(model: Any, input_ids: Any = None, *, max_new_tokens: int,
           min_new_tokens: int = 0, pad_token_id: int | None = None,
           eos_token_id: int | list[int] | None = None,
           decoder_start_token_id: int | None = None, streamer: Any = None,
           **kwargs: Any) -> Any:
    """Generate ``max_new_tokens`` tokens greedily with an ``OpenVINOModel``.

    :param model: the OpenVINO model; its PyTorch source (or stand-in,
        its ``blueprint``) gives the config, the generation config and the forward
        signature (no PyTorch inference runs, except to export the stateful graph).
        ``model.kv_cache`` is set to ``"stateful"`` or ``"none: <why>"``.
    :param input_ids: the prompt (decoder-only) or the encoder's token ids.
    :param streamer: transformers' ``BaseStreamer`` interface: ``put`` the prompt ids, then
        each step's tokens as they are chosen, then ``end()``.
    :param kwargs: further model inputs (``attention_mask``, ``pixel_values``,
        ``input_features``) as tensors, and generation options (refused unless greedy;
        ``use_cache=False`` decodes without a cache).
    :returns: the token ids, as transformers' greedy ``generate`` returns them.
    """
    import torch

    source = model.blueprint
    config = source.config
    generation = getattr(source, "generation_config", None)
    inputs = {k: v for k, v in kwargs.items() if torch.is_tensor(v)}
    options = {k: v for k, v in kwargs.items() if not torch.is_tensor(v)}
    use_cache = options.pop("use_cache", None) is not False
    options.pop("max_length", None)
    whisper = _whisper_style(source)
    if whisper:
        asked = [n for n in _WHISPER_PROMPT_OPTIONS
                 if options.pop(n, None) or getattr(generation, n, None)]
        if asked:
            raise NotImplementedError("OpenVINO greedy generation does not build Whisper's "
                                      f"language/task/timestamp prompt ({', '.join(asked)})")
    _check_options(generation, options)
    if input_ids is not None:
        inputs = {"input_ids": input_ids, **inputs}
    if not inputs:
        raise ValueError("generate needs the model's inputs (input_ids, input_features...)")
    main = next(iter(inputs.values()))
    batch = int(main.shape[0])
    eos = _ids(_first(eos_token_id, getattr(generation, "eos_token_id", None)))
    pad = _first(pad_token_id, getattr(generation, "pad_token_id", None), eos[0] if eos else 0)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    forced_bos = getattr(generation, "forced_bos_token_id", None)
    rules = GreedyRules(
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, eos=eos, pad=int(pad),
        suppress=_ids(getattr(generation, "suppress_tokens", None)),
        begin_suppress=_ids(getattr(generation, "begin_suppress_tokens", None)),
        forced_bos=forced_bos if encoder_decoder else None,
        forced_eos=_ids(getattr(generation, "forced_eos_token_id", None)))
    if encoder_decoder:
        start = _first(decoder_start_token_id,
                       getattr(generation, "decoder_start_token_id", None),
                       getattr(config, "decoder_start_token_id", None), pad)
        prompt = [int(start)]
        notimestamps = getattr(generation, "no_timestamps_token_id", None) if whisper else None
        if notimestamps is not None:
            prompt.append(int(notimestamps))
        sequence = torch.tensor([prompt] * batch, dtype=torch.long)
    else:
        if "input_ids" not in inputs:
            raise ValueError("a decoder-only model generates from input_ids")
        sequence = inputs.pop("input_ids")
    advance, model.kv_cache = _decoding(model, source, inputs, sequence, encoder_decoder,
                                        use_cache)
    prompt_length = int(sequence.shape[1])
    finished = torch.zeros(batch, dtype=torch.bool)
    stop = torch.tensor(eos, dtype=torch.long)
    if streamer is not None:
        streamer.put(sequence.cpu())
    with torch.inference_mode():
        logits = advance(None)
        for step in range(max_new_tokens):
            token = rules.choose(logits, step, finished)
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            if streamer is not None:
                streamer.put(token.cpu())
            if eos and step + 1 >= min_new_tokens:
                finished |= torch.isin(token, stop)
                if bool(finished.all()):
                    break
            if step + 1 < max_new_tokens:
                logits = advance(token)
    if streamer is not None:
        streamer.end()
    return sequence[:, prompt_length:] if whisper else sequence
