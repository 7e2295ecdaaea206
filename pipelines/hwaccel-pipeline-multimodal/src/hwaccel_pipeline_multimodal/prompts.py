"""The token side of a multimodal prompt: how many placeholder tokens each image, clip or
recording takes, and the token ids of the prompt around them.

A model merges the features its encoder yields for an image (clip, recording) into the
embeddings of the prompt at the positions of a placeholder token, one per feature, and checks
that the counts agree. :func:`features_per_item` asks the model itself: it runs the model's
``get_image_features`` (``get_video_features``, ``get_audio_features``) on the media inputs
and counts the feature vectors (a model without one: its audio encoder's own count of output
frames or its audio codec's count of code frames, else the fixed count its config declares).
:func:`prompt_ids` then writes, per row: the BOS token, the modality's start token
(``image_start``/``vision_start``/``boi``...), the placeholder once per feature, its end
token, and seeded text ids that avoid every special token of the config.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import feature_tensors
from hwaccel_pipeline_multimodal.config_values import find_int, special_token_ids, token_id

# the names a config gives a modality's placeholder, start and end tokens (+ _token_id/_index)
PLACEHOLDER_NAMES = {"image": ("image",), "video": ("video",), "audio": ("audio",)}
START_NAMES = {"image": ("image_start", "vision_start", "image_bos", "boi"),
               "video": ("video_start", "vision_start"),
               "audio": ("audio_start", "audio_bos", "boa")}
END_NAMES = {"image": ("image_end", "vision_end", "image_eos", "eoi"),
             "video": ("video_end", "vision_end"),
             "audio": ("audio_end", "audio_eos", "eoa")}
FIXED_COUNT_KEYS = ("num_query_tokens", "latent_query_num", "mm_tokens_per_image",
                    "image_seq_length", "num_image_tokens")
"""Config keys of a fixed number of features per image (resamplers, Q-Formers, pooling)."""
MM_TOKEN_TYPES = {"image": 1, "video": 2, "audio": 3}
"""transformers' modality codes of ``mm_token_type_ids`` (0 is text)."""


@dataclass(frozen=True)
class Placeholders:
    """The placeholder tokens of one modality in every row of a prompt."""

    modality: str
    token_id: int
    count: int
    start_id: int | None = None
    end_id: int | None = None


def named_parameters(method: Any) -> set[str]:
    """The parameters a method names (not ``*args``/``**kwargs``)."""
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {p.name for p in inspect.signature(method).parameters.values() if p.kind not in kinds}


def feature_method(model: Any, modality: str) -> Any | None:
    """The ``get_<modality>_features`` of the model's inner model (else base model, else its
    own, else the first submodule's that has one), preferring one that names its parameters
    over a wrapper that passes ``*args``."""
    name = f"get_{modality}_features"
    owners = [getattr(model, "model", None), getattr(model, "base_model", None), model]
    owners += list(model.modules())  # a policy's vision-language model, deeper down
    found = [getattr(owner, name, None) for owner in owners if owner is not None]
    methods = [method for method in found if callable(method)]
    named = [method for method in methods if named_parameters(method)]
    return (named or methods or [None])[0]


def furthest(errors: list[Exception]) -> Exception:
    """Of the errors of several tries, the one raised deepest in the call stack: the try
    that got furthest (its message is the one that names what to change)."""
    import traceback

    return max(errors, key=lambda exc: len(traceback.extract_tb(exc.__traceback__)))


def features_per_item(model: Any, modality: str, media: dict[str, Any], items: int) -> int:
    """How many feature vectors the model's encoder yields per image (recording) of
    ``media``, which holds ``items`` of them of the same size. For a model without a
    ``get_<modality>_features``: its audio encoder's (codec's) own count of output frames
    (:func:`_encoder_output_length`), else the fixed count its config declares
    (:data:`FIXED_COUNT_KEYS`: a resampler's queries)."""
    import torch

    method = feature_method(model, modality)
    if method is None:
        count = _encoder_output_length(model, media)
        if count is None:
            count = find_int(model.config, *FIXED_COUNT_KEYS)
        if count is None:
            raise HwaccelError(f"{type(model).__name__} has no get_{modality}_features and "
                               f"its config no count of {modality} features")
        return count
    parameters = named_parameters(method)
    device = next(iter(model.parameters())).device  # the meta device counts shapes only
    kwargs = {name: value.to(device) if torch.is_tensor(value) else value
              for name, value in media.items() if name in parameters}
    with torch.inference_mode():
        output = method(**kwargs)
    total = sum(int(t.numel() // t.shape[-1]) for t in feature_tensors(output) if t.dim())
    if total == 0 or total % items:
        raise HwaccelError(f"{type(model).__name__}.get_{modality}_features yielded {total} "
                           f"feature vectors for {items} {modality} inputs of one size")
    return total // items


def _encoder_output_length(model: Any, media: dict[str, Any]) -> int | None:
    """Features per item an audio encoder yields, by its own count of output frames
    (``_get_feat_extract_output_lengths`` of the lengths its frame mask gives), else by an
    audio codec's count of code frames for the samples of the waveform it encodes whole
    (``get_encoded_length`` of the last axis of ``input_values``), else ``None``."""
    import torch

    counter = _first_module_with(model, "_get_feat_extract_output_lengths")
    masks = [value for name, value in media.items()
             if name.endswith("mask") and torch.is_tensor(value) and value.dim() == 2]
    if counter is not None and masks:
        lengths = counter._get_feat_extract_output_lengths(masks[0].sum(dim=-1))
        lengths = lengths[-1] if isinstance(lengths, tuple) else lengths
        return int(lengths.min())
    codec = _first_module_with(model, "get_encoded_length")
    waveform = media.get("input_values")
    if codec is not None and torch.is_tensor(waveform):
        return int(codec.get_encoded_length(torch.tensor(waveform.shape[-1])))
    return None


def _first_module_with(model: Any, method: str) -> Any | None:
    """The first of the model's modules (itself included) that has ``method``."""
    return next((module for module in model.modules() if hasattr(module, method)), None)


def placeholders(config: Any, modality: str, count: int,
                 placeholder: int | None = None) -> Placeholders:
    """The placeholder (``placeholder``, else the one the config names), start and end
    tokens of ``modality``."""
    placeholder = token_id(config, *PLACEHOLDER_NAMES[modality], nested=True) \
        if placeholder is None else placeholder
    if placeholder is None:
        raise HwaccelError(f"{config.model_type!r}: the config names no {modality} token")
    return Placeholders(modality, placeholder, count, token_id(config, *START_NAMES[modality]),
                        token_id(config, *END_NAMES[modality]))


def free_token_id(config: Any, vocab: int) -> int:
    """The highest id below ``vocab`` that is no special token of the config."""
    special = special_token_ids(config)
    return next(i for i in range(vocab - 1, -1, -1) if i not in special)


def text_ids(config: Any, vocab: int, rows: int, length: int,
             avoid: frozenset[int] = frozenset()) -> Any:
    """``(rows, length)`` seeded token ids below ``vocab`` that are neither special tokens of
    the config nor in ``avoid``; the first is the BOS token where the text config has one."""
    import torch

    special = special_token_ids(config) | avoid
    allowed = torch.tensor([i for i in range(vocab) if i not in special])
    generator = torch.Generator().manual_seed(TINY_SEED)
    ids = allowed[torch.randint(len(allowed), (rows, max(length, 1)), generator=generator)]
    bos = token_id(config, "bos")
    if bos is not None and bos < vocab:
        ids[:, 0] = bos
    return ids


def prompt_ids(config: Any, vocab: int, rows: int, text_length: int,
               blocks: list[Placeholders]) -> Any:
    """``(rows, length)`` prompt ids: the first text token (BOS), then each block (start
    token, placeholders, end token), then the rest of ``text_length`` text tokens."""
    import torch

    avoid = frozenset(block.token_id for block in blocks)
    text = text_ids(config, vocab, rows, text_length, avoid)
    parts = [text[:, :1]]
    for block in blocks:
        ids = [block.start_id] * (block.start_id is not None) + [block.token_id] * block.count \
            + [block.end_id] * (block.end_id is not None)
        parts.append(torch.tensor(ids, dtype=text.dtype).expand(rows, -1))
    parts.append(text[:, 1:])
    return torch.cat(parts, dim=1)


def mm_token_types(input_ids: Any, blocks: list[Placeholders]) -> Any:
    """transformers' ``mm_token_type_ids``: each placeholder's modality code, 0 for text."""
    import torch

    types = torch.zeros_like(input_ids)
    for block in blocks:
        types[input_ids == block.token_id] = MM_TOKEN_TYPES[block.modality]
    return types
