"""Greedy generation on OpenVINO: a decoding loop that calls the compiled graph each step.

There is no KV cache: each step runs the whole (growing) sequence through the graph the
forward call uses (``use_cache=False``), takes the last position's logits and appends their
arg-max. Decoder-only models grow ``input_ids`` (and ``attention_mask``); encoder-decoder
models keep the encoder inputs and grow ``decoder_input_ids`` from the decoder start token.

The result follows transformers' ``generate(do_sample=False)``: the prompt then the new
tokens (decoder-only), the decoder start token then the new tokens (encoder-decoder), or only
the new tokens for Whisper-style models (``WhisperGenerationMixin``), whose decoder prompt is
the start token and ``<|notimestamps|>`` when the generation config names one. The logits
processors greedy decoding applies by default are applied too: ``min_new_tokens`` (no EOS
before it), ``suppress_tokens``, ``begin_suppress_tokens``, ``forced_bos_token_id`` and
``forced_eos_token_id``; a row that emits EOS afterwards is finished and padded. Generation
options this loop does not implement (sampling, beams, repetition penalties, language
detection, ...) raise ``NotImplementedError`` naming them, rather than decoding differently.
"""

from __future__ import annotations

import inspect
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


def fixed_arguments(model: Any, names: set[str]) -> dict[str, Any]:
    """The non-tensor arguments for decoding calls with tensor inputs ``names``.

    Those of a forward call the model has already compiled with the same inputs (so
    decoding runs the graph the workload's forward ran, ``output_router_logits`` and all),
    else ``use_cache=False`` where the forward takes it.
    """
    for call in model.calls.values():
        if set(call.spec.names) == names and "logits" in call.conversion.outputs:
            return dict(call.spec.fixed)
    parameters = inspect.signature(model.source.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return {"use_cache": False} if "use_cache" in parameters or takes_any else {}


def greedy(model: Any, input_ids: Any = None, *, max_new_tokens: int,
           min_new_tokens: int = 0, pad_token_id: int | None = None,
           eos_token_id: int | list[int] | None = None,
           decoder_start_token_id: int | None = None, **kwargs: Any) -> Any:
    """Generate ``max_new_tokens`` tokens greedily with an ``OpenVINOModel``.

    :param model: the OpenVINO model; its PyTorch source gives the config, the generation
        config and the forward signature (no PyTorch inference runs).
    :param input_ids: the prompt (decoder-only) or the encoder's token ids.
    :param kwargs: further model inputs (``attention_mask``, ``pixel_values``,
        ``input_features``) as tensors, and generation options (refused unless greedy).
    :returns: the token ids, as transformers' greedy ``generate`` returns them.
    """
    import torch

    source = model.source
    config = source.config
    generation = getattr(source, "generation_config", None)
    inputs = {k: v for k, v in kwargs.items() if torch.is_tensor(v)}
    options = {k: v for k, v in kwargs.items() if not torch.is_tensor(v)}
    options.pop("use_cache", None)
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
    suppress = _ids(getattr(generation, "suppress_tokens", None))
    begin_suppress = _ids(getattr(generation, "begin_suppress_tokens", None))
    forced_bos = getattr(generation, "forced_bos_token_id", None)
    forced_eos = getattr(generation, "forced_eos_token_id", None)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
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
        prompt = []
    names = {*inputs, "decoder_input_ids" if encoder_decoder else "input_ids"}
    fixed = fixed_arguments(model, names)
    prompt_length = int(sequence.shape[1])
    finished = torch.zeros(batch, dtype=torch.bool)
    with torch.inference_mode():
        for step in range(max_new_tokens):
            if encoder_decoder:
                outputs = model(**inputs, decoder_input_ids=sequence, **fixed)
            else:
                outputs = model(input_ids=sequence, **inputs, **fixed)
            logits = outputs["logits"][:, -1, :].float().clone()
            vocab = logits.shape[-1]

            def block(ids: list[int], scores: Any = logits, size: int = vocab) -> None:
                valid = [i for i in ids if 0 <= i < size]
                if valid:
                    scores[:, valid] = -float("inf")

            if step < min_new_tokens:
                block(eos)
            block(suppress)
            if step == 0:
                block(begin_suppress)
            if step == 0 and forced_bos is not None and encoder_decoder:
                logits[:] = -float("inf")
                logits[:, int(forced_bos)] = 0
            if step == max_new_tokens - 1 and forced_eos is not None:
                logits[:] = -float("inf")
                logits[:, _ids(forced_eos)] = 0
            token = logits.argmax(dim=-1)
            token = torch.where(finished, torch.full_like(token, int(pad)), token)
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            if not encoder_decoder and "attention_mask" in inputs:
                mask = inputs["attention_mask"]
                inputs["attention_mask"] = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
            if eos and step + 1 >= min_new_tokens:
                finished |= torch.isin(token, torch.tensor(eos))
                if bool(finished.all()):
                    break
    return sequence[:, prompt_length:] if whisper else sequence
