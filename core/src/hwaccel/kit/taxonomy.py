"""The reference rule of ``TAXONOMY.md``: family, subfamily and pipeline of a model type.

The rule is data-driven: it looks only at the set of auto-model tasks that list a model type
(from :mod:`hwaccel.kit.autotables`), for mixture-of-experts at the default config, and for a
model type listed only as a base model at whether its base class embeds text and images or
videos (a contrastive dual encoder, :func:`is_vision_text_dual_encoder`). Pipeline
plugins call :func:`reference_label` and claim the models whose pipeline is theirs, so the order
of precedence between pipelines lives in one place.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PIPELINES = ("text", "vision", "vision-text", "audio", "multimodal", "diffusion", "moe",
             "state-space", "rag")
FAMILIES = ("embedding", "text_generation", "vision", "audio", "multimodal", "unknown")

VISION_TEXT_TASKS = {"ZERO_SHOT_IMAGE_CLASSIFICATION", "ZERO_SHOT_OBJECT_DETECTION", "RETRIEVAL"}
MULTIMODAL_TASKS = {"IMAGE_TEXT_TO_TEXT", "MULTIMODAL_LM", "VISUAL_QUESTION_ANSWERING",
                    "DOCUMENT_QUESTION_ANSWERING", "VISION_2_SEQ"}
AUDIO_TASKS = {"SPEECH_SEQ_2_SEQ", "CTC", "AUDIO_CLASSIFICATION", "AUDIO_FRAME_CLASSIFICATION",
               "AUDIO_XVECTOR", "TEXT_TO_SPECTROGRAM", "TEXT_TO_WAVEFORM", "RNNT", "TDT"}
VISION_TASK_PATTERNS = ("IMAGE", "IMAGE_CLASSIFICATION", "*_SEGMENTATION", "OBJECT_DETECTION",
                        "DEPTH_ESTIMATION", "VIDEO_CLASSIFICATION", "MASK_GENERATION",
                        "KEYPOINT_*", "IMAGE_TO_IMAGE", "*_ESTIMATION", "TEXT_RECOGNITION",
                        "TABLE_RECOGNITION", "BACKBONE", "MASKED_IMAGE_MODELING",
                        "CAUSAL_IMAGE_MODELING", "IMAGE_MATTING")
EMBEDDING_TASKS = {"MASKED_LM", "TEXT_ENCODING", "SEQUENCE_CLASSIFICATION",
                   "TOKEN_CLASSIFICATION", "QUESTION_ANSWERING", "MULTIPLE_CHOICE",
                   "NEXT_SENTENCE_PREDICTION", "TABLE_QUESTION_ANSWERING", "PRETRAINING"}
STATE_SPACE_TYPES = {"mamba", "mamba2", "falcon_mamba", "bamba", "jamba", "zamba", "zamba2",
                     "falcon_h1", "nemotron_h", "granitemoehybrid", "rwkv", "recurrent_gemma",
                     "xlstm"}
# The text architecture the text-like pipelines report for each text subfamily.
TEXT_ARCHITECTURES = {"masked_lm": "encoder-only", "encoder": "encoder-only",
                      "causal_lm": "decoder-only", "seq2seq": "encoder-decoder"}
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts",
               "n_experts", "num_experts_per_layer")


# A model type that transformers lists only as a base model (``MODEL_MAPPING_NAMES``) is
# still a CLIP-like image-text (or video-text) model when its base class embeds both kinds
# into one space: what the zero-shot pipelines call (X-CLIP, AIMv2, GroupViT,
# VisionTextDualEncoder are published without a zero-shot task).
BASE_ONLY = frozenset({"BASE"})
TEXT_FEATURES = "get_text_features"
VISUAL_FEATURES = ("get_image_features", "get_video_features")


@dataclass(frozen=True)
class Label:
    """The three labels of a model type and the rule that produced them."""

    family: str
    subfamily: str | None
    pipeline: str | None
    rule: str


def _meets(tasks: frozenset[str], names: set[str]) -> bool:
    return bool(tasks & names)


def _is_vision(tasks: frozenset[str]) -> bool:
    return any(fnmatch.fnmatchcase(t, p) for t in tasks for p in VISION_TASK_PATTERNS)


@functools.cache
def is_vision_text_dual_encoder(model_type: str) -> bool:
    """True when the base model class of ``model_type`` (the installed transformers') has
    :data:`TEXT_FEATURES` and one of :data:`VISUAL_FEATURES`: a contrastive dual encoder."""
    try:
        import transformers
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

        names = MODEL_MAPPING_NAMES.get(model_type) or ()
        for name in (names,) if isinstance(names, str) else names:
            cls = getattr(transformers, name, None)
            if cls is not None and hasattr(cls, TEXT_FEATURES) \
                    and any(hasattr(cls, method) for method in VISUAL_FEATURES):
                return True
    except Exception:  # noqa: BLE001 - a class that cannot be imported declares nothing
        return False
    return False


def max_experts(config: dict[str, Any]) -> int:
    """Return the largest expert count a config (or its ``text_config``) declares, else 0."""
    counts = [0]
    for scope in (config, config.get("text_config") or {}):
        if not isinstance(scope, dict):
            continue
        for key in EXPERT_KEYS:
            value = scope.get(key)
            if isinstance(value, (list, tuple)):
                value = max((v for v in value if isinstance(v, int)), default=0)
            if isinstance(value, int) and not isinstance(value, bool):
                counts.append(value)
    return max(counts)


def declares_experts(config: dict[str, Any]) -> bool:
    """True when a config (or its ``text_config``) sets any of the expert-count keys."""
    scopes = (config, config.get("text_config"))
    return any(isinstance(scope, dict) and key in scope for scope in scopes for key in EXPERT_KEYS)


def diffusers_label(config: dict[str, Any]) -> Label | None:
    """TAXONOMY.md's rule outside transformers: a diffusers pipeline or model config.

    A ``model_index.json`` whose ``_class_name`` ends in ``Pipeline``, or a config written by
    diffusers (``_diffusers_version``), is family vision, subfamily and pipeline diffusion.
    """
    class_name = config.get("_class_name")
    if (isinstance(class_name, str) and class_name.endswith("Pipeline")) or \
            "_diffusers_version" in config:
        return Label("vision", "diffusion", "diffusion",
                     f"diffusers config of {class_name or 'a diffusers model'}")
    return None


def composition_label(generator: Label) -> Label:
    """TAXONOMY.md: a retrieve-then-generate composition is a ``rag`` model.

    Family text_generation; the subfamily is the generator's when it is a text generator.
    """
    sub = generator.subfamily if generator.family == "text_generation" else None
    return Label("text_generation", sub, "rag",
                 "rule 1: retrieve-then-generate composition")


def reference_label(model_type: str, tasks: frozenset[str],
                    config: Callable[[], dict[str, Any]] | None = None) -> Label:
    """Apply the TAXONOMY.md rule to a model type and its auto-model tasks.

    :param model_type: the transformers ``model_type``.
    :param tasks: the TASK names whose auto table lists the model type.
    :param config: returns the config dict used for the expert count; where it sets no
        expert key (or is not given) the default config's count, from the cached auto tables,
        is used. Only called for text models.
    """
    if model_type == "rag":
        return Label("text_generation", "seq2seq", "rag", "rule 1: model type rag")
    if _meets(tasks, VISION_TEXT_TASKS):
        return Label("multimodal", None, "vision-text", "rule 2: zero-shot/retrieval task")
    if _meets(tasks, MULTIMODAL_TASKS):
        return Label("multimodal", None, "multimodal", "rule 3: image-text-to-text task")
    if _meets(tasks, AUDIO_TASKS):
        return Label("audio", None, "audio", "rule 4: speech/audio task")
    if _is_vision(tasks):
        return Label("vision", None, "vision", "rule 5: image/video task")
    if "SEQ_TO_SEQ_CAUSAL_LM" in tasks or ("CAUSAL_LM" in tasks and "MASKED_LM" not in tasks):
        sub = "seq2seq" if "SEQ_TO_SEQ_CAUSAL_LM" in tasks else "causal_lm"
        label = Label("text_generation", sub, "text", "rule 6: generative LM task")
    elif _meets(tasks, EMBEDDING_TASKS):
        sub = "masked_lm" if "MASKED_LM" in tasks else "encoder"
        label = Label("embedding", sub, "text", "rule 7: encoder task")
    elif tasks == BASE_ONLY and is_vision_text_dual_encoder(model_type):
        return Label("multimodal", None, "vision-text",
                     "rule 2: a base model only, with text and image or video features "
                     "(a contrastive dual encoder)")
    else:
        return Label("unknown", None, None, "no rule matches the model type's tasks")
    if model_type in STATE_SPACE_TYPES:
        return Label(label.family, label.subfamily, "state-space",
                     label.rule + ", recurrent-state model")
    values = config() if config is not None else {}
    if declares_experts(values):
        experts = max_experts(values)
    else:  # a config without the keys takes its class defaults, as transformers does
        from hwaccel.kit import autotables
        experts = autotables.load().experts_by_type.get(model_type, 0)
    if experts > 1:
        return Label(label.family, label.subfamily, "moe",
                     label.rule + f", {experts} experts")
    return label
