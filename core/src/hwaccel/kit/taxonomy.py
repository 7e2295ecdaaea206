"""The reference rule of ``TAXONOMY.md``: family, subfamily and default pipeline of a model.

The rule is data (``taxonomy.json`` beside this module): rows of conditions on the set of
auto-model tasks that list a model type (from :mod:`hwaccel.kit.autotables`), the labels each
row gives, the pipeline TAXONOMY.md names for it by default and the overrides of that default
(recurrent-state model types, more than one expert), plus the labels of models outside
transformers (diffusers configs, retrieve-then-generate compositions). This module applies the
data and names no pipeline: which pipeline takes a model is decided by the core from what the
installed pipelines declare (``hwaccel_pipeline_info``), with :func:`rule_matches`; the
default only decides for pipelines that declare nothing, and names the pipeline to install
when no installed one takes a model.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from hwaccel.types import LabelRule

TABLE: dict[str, Any] = json.loads(
    files(__package__).joinpath("taxonomy.json").read_text(encoding="utf-8"))
"""The rule's data, as ``taxonomy.json`` holds it."""

FAMILIES = tuple(family["name"] for family in TABLE["families"])
RULE_IDS = tuple(dict.fromkeys(
    [row["id"] for row in TABLE["rules"]]
    + [TABLE[name]["id"] for name in ("diffusers", "composition", "none")]))
"""The ids of the rule's rows: what a pipeline's :class:`~hwaccel.types.LabelRule` names."""
EMBEDDING_TASKS = frozenset(
    task for row in TABLE["rules"] if row["id"] == "encoder"
    for when in row["when"] for task in when.get("meets", ()))
"""The TASKs of an encoder (the rule's ``encoder`` row)."""
# The text architecture the text-like pipelines report for each text subfamily.
TEXT_ARCHITECTURES = {"masked_lm": "encoder-only", "encoder": "encoder-only",
                      "causal_lm": "decoder-only", "seq2seq": "encoder-decoder"}
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts",
               "n_experts", "num_experts_per_layer")


# A model type that transformers lists only as a base model (``MODEL_MAPPING_NAMES``) is
# still a CLIP-like image-text (or video-text) model when its base class embeds both kinds
# into one space: what the zero-shot pipelines call (X-CLIP, AIMv2, GroupViT,
# VisionTextDualEncoder are published without a zero-shot task).
TEXT_FEATURES = "get_text_features"
VISUAL_FEATURES = ("get_image_features", "get_video_features")


@dataclass(frozen=True)
class Label:
    """The labels of a model and the rule that produced them.

    ``pipeline`` is TAXONOMY.md's default pipeline until the core replaces it by the
    installed pipeline that takes the model; ``rule_id`` is the id of the deciding row
    (:data:`RULE_IDS`) and ``experts`` the largest expert count the config declares.
    """

    family: str
    subfamily: str | None
    pipeline: str | None
    rule: str
    rule_id: str = TABLE["none"]["id"]
    experts: int = 0


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


# The named tests a row's ``check`` condition runs on the model type.
CHECKS: dict[str, Callable[[str], bool]] = {"dual_encoder": is_vision_text_dual_encoder}


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


def _meets(tasks: frozenset[str], patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(task, pattern) for task in tasks for pattern in patterns)


def _holds(when: dict[str, Any], model_type: str, tasks: frozenset[str], experts: int) -> bool:
    """Whether every condition of one condition set holds (the named check last)."""
    tests: dict[str, Callable[[Any], bool]] = {
        "model_types": lambda value: model_type in value,
        "meets": lambda value: _meets(tasks, value),
        "lacks": lambda value: not _meets(tasks, value),
        "only": lambda value: tasks == frozenset(value),
        "min_experts": lambda value: experts >= value,
        "check": lambda value: CHECKS[value](model_type),
    }
    return all(test(when[key]) for key, test in tests.items() if key in when)


def _applies(row: dict[str, Any], model_type: str, tasks: frozenset[str], experts: int) -> bool:
    return any(_holds(when, model_type, tasks, experts) for when in row["when"])


def _subfamily(row: dict[str, Any], tasks: frozenset[str]) -> str | None:
    """The first of the row's subfamilies whose tasks ``tasks`` meet (no tasks: always)."""
    for name, names in row.get("subfamilies", ()):
        if not names or _meets(tasks, names):
            return name
    return None


def _label(row: dict[str, Any], tasks: frozenset[str], rule: str | None = None,
           experts: int = 0) -> Label:
    return Label(row["family"], _subfamily(row, tasks), row.get("pipeline"),
                 rule or row["says"], row["id"], experts)


def no_rule_label(rule: str | None = None) -> Label:
    """The label of a model no row of the rule places: family ``unknown``, no pipeline.

    :param rule: why (the default: no row matches the model type's tasks).
    """
    return _label(TABLE["none"], frozenset(), rule)


def diffusers_label(config: dict[str, Any]) -> Label | None:
    """TAXONOMY.md's rule outside transformers: a diffusers pipeline or model config.

    A ``model_index.json`` whose ``_class_name`` ends in ``Pipeline``, or a config written by
    diffusers (``_diffusers_version``), gets the labels of the rule's ``diffusers`` entry.
    """
    class_name = config.get("_class_name")
    if (isinstance(class_name, str) and class_name.endswith("Pipeline")) or \
            "_diffusers_version" in config:
        row = TABLE["diffusers"]
        return _label(row, frozenset(), row["says"].format(name=class_name or row["unnamed"]))
    return None


def composition_label(generator: Label) -> Label:
    """TAXONOMY.md: a retrieve-then-generate composition, labelled by the rule's
    ``composition`` entry; the subfamily is the generator's when it is a text generator."""
    row = TABLE["composition"]
    sub = generator.subfamily if generator.family in row["subfamily_of_generator_in"] else None
    return Label(row["family"], sub, row["pipeline"], row["says"], row["id"])


def expert_count(model_type: str, config: Callable[[], dict[str, Any]] | None = None) -> int:
    """The experts of a model: its config's count where it sets an expert key, else its
    class defaults' (the default config's, from the cached auto tables), as transformers
    does."""
    values = config() if config is not None else {}
    if declares_experts(values):
        return max_experts(values)
    if not model_type:
        return 0
    from hwaccel.kit import autotables

    return autotables.load().experts_by_type.get(model_type, 0)


def reference_label(model_type: str, tasks: frozenset[str],
                    config: Callable[[], dict[str, Any]] | None = None) -> Label:
    """Apply the TAXONOMY.md rule to a model type and its auto-model tasks.

    :param model_type: the transformers ``model_type`` (empty for tasks alone).
    :param tasks: the TASK names whose auto table lists the model type.
    :param config: returns the config dict used for the expert count; where it sets no
        expert key (or is not given) the default config's count, from the cached auto tables,
        is used.
    """
    experts = expert_count(model_type, config)
    row = next((row for row in TABLE["rules"] if _applies(row, model_type, tasks, experts)),
               TABLE["none"])
    label = _label(row, tasks, experts=experts)
    for override in TABLE["overrides"]:
        if label.pipeline in override["of"] and _applies(override, model_type, tasks, experts):
            return Label(label.family, label.subfamily, override["pipeline"],
                         label.rule + override["suffix"].format(experts=experts),
                         label.rule_id, experts)
    return label


def rule_matches(rule: LabelRule, label: Label, model_type: str | None,
                 tasks: frozenset[str]) -> bool:
    """Whether a pipeline's :class:`~hwaccel.types.LabelRule` takes a model: every field it
    sets matches (``rules`` the label's rule id, ``families`` its family, ``tasks`` one of
    the model's auto-model tasks, ``model_types`` its model type, ``min_experts`` at most
    its expert count); a rule that sets none matches nothing."""
    checks = [
        (rule.rules, lambda: label.rule_id in rule.rules),
        (rule.families, lambda: label.family in rule.families),
        (rule.tasks, lambda: bool(tasks & set(rule.tasks))),
        (rule.model_types, lambda: model_type in rule.model_types),
        (rule.min_experts is not None, lambda: label.experts >= (rule.min_experts or 0)),
    ]
    set_fields = [check for given, check in checks if given]
    return bool(set_fields) and all(check() for check in set_fields)


def task_needs_same_pipeline(family: str) -> bool:
    """Whether models of ``family`` do a task only in the pipeline the task's label names
    (the family's entry sets ``task_needs_same_pipeline``: multimodal models match images to
    texts or turn images into text, two pipelines' jobs)."""
    return any(entry["name"] == family and entry.get("task_needs_same_pipeline", False)
               for entry in TABLE["families"])


# Hugging Face pipeline task names (and a few synonyms) -> auto-model TASK names.
PIPELINE_TASKS = {
    "fill-mask": "MASKED_LM", "feature-extraction": "TEXT_ENCODING",
    "sentence-similarity": "TEXT_ENCODING", "text-classification": "SEQUENCE_CLASSIFICATION",
    "token-classification": "TOKEN_CLASSIFICATION", "question-answering": "QUESTION_ANSWERING",
    "text-generation": "CAUSAL_LM", "text2text-generation": "SEQ_TO_SEQ_CAUSAL_LM",
    "summarization": "SEQ_TO_SEQ_CAUSAL_LM", "translation": "SEQ_TO_SEQ_CAUSAL_LM",
    "image-classification": "IMAGE_CLASSIFICATION", "object-detection": "OBJECT_DETECTION",
    "image-segmentation": "IMAGE_SEGMENTATION", "depth-estimation": "DEPTH_ESTIMATION",
    "automatic-speech-recognition": "CTC", "audio-classification": "AUDIO_CLASSIFICATION",
    "text-to-speech": "TEXT_TO_WAVEFORM", "text-to-audio": "TEXT_TO_WAVEFORM",
    "zero-shot-image-classification": "ZERO_SHOT_IMAGE_CLASSIFICATION",
    "image-text-to-text": "IMAGE_TEXT_TO_TEXT",
    "visual-question-answering": "VISUAL_QUESTION_ANSWERING",
}


def task_names(tasks: tuple[str, ...]) -> frozenset[str]:
    """Map pipeline task names (``fill-mask``) or TASK names (``MASKED_LM``) to TASK names."""
    out = set()
    for task in tasks:
        key = task.strip().lower()
        out.add(PIPELINE_TASKS.get(key, task.strip().upper().replace("-", "_")))
    return frozenset(out)
