"""The audio side of a speech-language model's inputs: deterministic waveforms and what the
model type's own feature extractor class makes of them.

The waveforms are the audio pipeline's (:func:`hwaccel_pipeline_audio.workload.waveforms`) at
the extractor's sampling rate, :data:`HOPS` hops of it long. The class is the one transformers names
for the model type (``FEATURE_EXTRACTOR_MAPPING_NAMES``), else for a nested config's type;
its defaults are aligned with the config where they name the same size: mel bins
(``num_mel_bins``/``feature_size``) and the sampling rate. It is asked for an attention mask,
which goes to the forward under every name the forward gives a mask of the audio features.
Where the config subsamples frames by a fixed ``subsampling_factor``, features and mask are
padded on the right to a multiple of it, as the type's processor does. A type whose
extractor cannot be built here (no class, or one that needs a missing library) gets
:func:`synthetic_audio_inputs`: features the audio encoder accepts, a mask of ones over their
frames, and, under a mask of the audio only the forward takes, one ``True`` per feature the
encoder yields (:func:`output_feature_mask`), as such a processor counts them.
"""

from __future__ import annotations

import inspect
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel_pipeline_multimodal.config_values import find_int, is_int, walk

HOPS = 96
"""The waveforms last this many hops of the extractor (0.96 s at 10 ms hops; one second
where it has no hop): a multiple of 32, so encoders that fold frames in groups of two, four
or eight find whole groups."""
_MEL_KEYS = ("num_mel_bins", "n_mels", "feature_size")
_RATE_KEYS = ("sampling_rate", "sample_rate")
_MASK_HINTS = ("feature", "padding", "audio")


def feature_extractor_class(model_type: str, config: Any) -> type | None:
    """The feature extractor class transformers names for the type or a nested type."""
    from transformers.models.auto.feature_extraction_auto import (
        FEATURE_EXTRACTOR_MAPPING_NAMES,
        feature_extractor_class_from_name,
    )

    for owner in [model_type] + [sub.model_type for sub in walk(config)][1:]:
        name = FEATURE_EXTRACTOR_MAPPING_NAMES.get(owner)
        cls = feature_extractor_class_from_name(name) if name else None
        if cls is not None:
            return cls
    return None


def aligned_options(cls: type, config: Any) -> dict[str, int]:
    """The constructor options of ``cls`` the config sizes: its mel bins and sampling rate."""
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}
    options: dict[str, int] = {}
    mels = find_int(config, "num_mel_bins", "n_mels")
    if mels is not None:
        for key in _MEL_KEYS:
            value = defaults.get(key)
            if isinstance(value, int) and value > 1 and value != mels:
                options[key] = mels
    rate = find_int(config, *_RATE_KEYS)
    if rate is not None and "sampling_rate" in defaults:
        options["sampling_rate"] = rate
    return options


def _accepts(extractor: Any, option: str) -> bool:
    """True when the extractor's ``__call__`` takes ``option`` (by name or as ``**kwargs``)."""
    parameters = inspect.signature(extractor.__call__).parameters.values()
    return any(p.name == option or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def audio_inputs(model_type: str, config: Any, model: Any, batch: int,
                 forward_parameters: frozenset[str]) -> tuple[dict[str, Any], bool]:
    """The feature extractor's encoding of ``batch`` waveforms and ``True`` (its class made
    them); else :func:`synthetic_audio_inputs` and ``False``."""
    from hwaccel_pipeline_audio.workload import waveforms

    try:
        cls = feature_extractor_class(model_type, config)
        extractor = cls(**aligned_options(cls, config)) if cls is not None else None
    except ImportError:  # the class needs a library this machine lacks (torchaudio)
        extractor = None
    if extractor is None:
        return synthetic_audio_inputs(config, model, batch, forward_parameters), False
    rate = int(getattr(extractor, "sampling_rate", None) or find_int(config, *_RATE_KEYS)
               or 16000)
    hop = getattr(extractor, "hop_length", None)
    samples = HOPS * hop if is_int(hop) and hop > 0 else rate
    waves = waveforms(batch, samples, rate)
    options = {"return_attention_mask": True} if _accepts(extractor, "return_attention_mask") \
        else {}
    encoded = dict(extractor(waves, sampling_rate=rate, return_tensors="pt", **options).items())
    mask = encoded.pop("attention_mask", None)
    factor = find_int(config, "subsampling_factor")
    if mask is not None and factor is not None and mask.shape[-1] % factor:
        encoded, mask = _padded(encoded, mask, factor)
    if mask is not None:
        for name in forward_parameters - set(encoded):
            if name.endswith("mask") and name != "attention_mask" and any(
                    hint in name for hint in _MASK_HINTS):
                encoded[name] = mask
    return encoded, True


def _padded(encoded: dict[str, Any], mask: Any, factor: int) -> tuple[dict[str, Any], Any]:
    """Features and mask padded on the right to a multiple of ``factor`` frames, as the
    processors of models that subsample frames by a fixed factor do."""
    import torch

    frames = mask.shape[-1]
    extra = -frames % factor
    out = {}
    for name, value in encoded.items():
        axes = [i for i in range(1, value.dim()) if value.shape[i] == frames] \
            if torch.is_tensor(value) else []
        if axes:
            pad = [0, 0] * (value.dim() - 1 - axes[-1]) + [0, extra]
            value = torch.nn.functional.pad(value, pad)
        out[name] = value
    return out, torch.nn.functional.pad(mask, (0, extra))


def _feature_sizes(config: Any) -> list[int]:
    """Feature sizes to try: mel bins times stacked frames, mel bins, then the input width
    an audio encoder declares."""
    mels = find_int(config, "num_mel_bins", "n_mels", "feature_size")
    stacked = find_int(config, "num_stacked_frames", "stack_frames")
    sizes = [mels * stacked if mels and stacked else None, mels,
             find_int(config, "input_dim", "input_feat_size", "feature_size")]
    return list(dict.fromkeys(size for size in sizes if size))


def synthetic_audio_inputs(config: Any, model: Any, batch: int,
                           forward_parameters: frozenset[str]) -> dict[str, Any]:
    """Seeded audio features shaped from the config, for a type whose feature extractor
    cannot be built here: :data:`HOPS` frames of each size of :func:`_feature_sizes`, as
    ``(batch, size, frames)`` and as ``(batch, frames, size)``, with a mask of ones under
    every mask name of the forward and of the model's audio encoder; the first candidate the
    encoder (``get_audio_features``) accepts is taken, else the refusal that got furthest is
    raised (:func:`~hwaccel_pipeline_multimodal.prompts.furthest`).

    A mask the encoder takes marks its input frames. A mask of the audio (:data:`_MASK_HINTS`)
    that only the forward takes selects among the encoder's output features the ones to merge
    into the prompt (Granite Speech's ``input_features_mask``: one per projector query), so
    it is :func:`output_feature_mask`."""
    import torch

    from hwaccel_pipeline_multimodal.prompts import feature_method, furthest, named_parameters

    method = feature_method(model, "audio")
    names = named_parameters(method) if method is not None else set()
    main = next((name for name in ("input_features", "input_values", "audio_values")
                 if name in names | forward_parameters), "input_features")
    masks = {name for name in names | forward_parameters
             if name.endswith("mask") and name != "attention_mask"}
    output_masks = {name for name in masks - names if any(hint in name for hint in _MASK_HINTS)}
    generator = torch.Generator().manual_seed(TINY_SEED)
    mask = torch.ones(batch, HOPS, dtype=torch.long)
    refusals: list[Exception] = []
    for size in _feature_sizes(config) or [HOPS]:
        features = torch.randn(batch, size, HOPS, generator=generator)
        for layout in (features, features.transpose(1, 2).contiguous()):
            candidate = {main: layout, **{name: mask for name in masks}}
            if method is None:
                return candidate
            try:
                with torch.inference_mode():
                    method(**{k: v for k, v in candidate.items() if k in names})
            except Exception as exc:  # noqa: BLE001 - the encoder refused this layout
                refusals.append(exc)
                continue
            if output_masks:
                selected = output_feature_mask(model, candidate, batch)
                candidate.update({name: selected for name in output_masks})
            return candidate
    if not refusals:
        raise HwaccelError("the config gives no size of audio features")
    raise furthest(refusals)


def output_feature_mask(model: Any, media: dict[str, Any], batch: int) -> Any:
    """``(batch, features)`` ``True``: every feature the model's audio encoder yields for each
    recording of ``media`` is merged into the prompt, as a processor that counts them per
    recording marks them (every recording here is as long as the others)."""
    import torch

    from hwaccel_pipeline_multimodal.prompts import features_per_item

    return torch.ones(batch, features_per_item(model, "audio", media, batch), dtype=torch.bool)
