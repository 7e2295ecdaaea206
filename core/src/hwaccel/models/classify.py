"""Classification: evidence from the model reference, claims from the pipeline plugins.

The core finds the strongest evidence of what a model is (its config, its architectures, an
explicit class name or task, or its name alone), applies the reference rule of TAXONOMY.md,
picks the installed pipeline that takes the model's labels (from every pipeline's
``hwaccel_pipeline_info``: the matching pipeline of highest precedence) and asks every
pipeline plugin to claim the model. The highest-confidence claim wins; a model nobody claims
is reported with the labels the rule gives and the reason nobody claimed it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import weakref
from dataclasses import dataclass

from hwaccel.kit import autotables
from hwaccel.kit.claims import SIGNAL_CONFIDENCE
from hwaccel.kit.pipeline_parts import model_tasks
from hwaccel.kit.taxonomy import (
    Label,
    composition_label,
    diffusers_label,
    no_rule_label,
    reference_label,
    rule_matches,
    task_names,
)
from hwaccel.models.resolve import resolve_model
from hwaccel.plugins import HookError, Plugins
from hwaccel.types import Classification, ModelRef, PipelineInfo

# Naming conventions of well-known model families whose names hold no transformers
# model_type (or hold a misleading one): name words -> model_type.
NAME_PATTERNS = {
    "minilm": "bert", "bge": "bert", "e5": "bert", "gte": "bert", "distilroberta": "roberta",
    "pythia": "gpt_neox", "dolly": "gpt_neox", "vicuna": "llama", "alpaca": "llama",
    "tinyllama": "llama", "codellama": "llama", "wizardlm": "llama", "deepseek-coder": "llama",
    "deepseek-llm": "llama", "deepseek-r1": "deepseek_v3", "zephyr": "mistral",
    "openchat": "mistral", "flan": "t5", "byt5": "t5", "mt0": "mt5", "bloomz": "bloom",
    "santacoder": "gpt_bigcode", "starcoder": "gpt_bigcode", "distilgpt2": "gpt2",
    "dialogpt": "gpt2", "cerebras-gpt": "gpt2", "galactica": "opt", "qwen1.5": "qwen2",
    "qwen1.5-moe": "qwen2_moe", "phi-3.5-moe": "phimoe", "switch": "switch_transformers",
    "yi": "llama", "solar": "llama", "codet5": "t5", "wmt19": "fsmt", "mxbai": "bert",
    "dino": "vit", "mit-b": "segformer", "dit": "beit", "deplot": "pix2struct",
    "pixtral": "llava", "s2t": "speech_to_text", "smollm": "llama", "opus-mt": "marian",
    "nllb": "m2m_100", "distilbart": "bart", "mms": "wav2vec2",
    "ast": "audio-spectrogram-transformer", "trocr": "vision-encoder-decoder",
    "donut": "vision-encoder-decoder",
}
_SUFFIX_TYPES = ("bert", "roberta", "gpt2")  # finbert, PubMedBERT, ... when nothing else fits
# transformers' mixture-of-experts variant of a model type (qwen2 -> qwen2_moe), whose
# models' names say the suffix's word (Qwen1.5-MoE-A2.7B)
_MOE_SUFFIX = "_moe"
_ACTIVE_PARAMS = re.compile(r"^a\d+b$")  # Qwen3-30B-A3B: 3 B parameters active per token


@dataclass(frozen=True)
class ClassifyOutcome:
    """A classification plus the errors plugins raised while making it."""

    classification: Classification
    errors: list[HookError]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _camel_words(text: str) -> list[str]:
    """Words split at case changes and digits too: ``CohereForAI`` -> cohere, for, ai."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+",
                                          text)]


def _match_words(words: list[str], candidates: dict[str, str]) -> str | None:
    """The model type whose joined words start at a word of ``words`` (best match).

    A candidate matches when its words, joined, equal consecutive name words joined, or a
    prefix of them followed by a digit (``llama3``). A match at the first word beats one
    later in the name; then the longer candidate wins.
    """
    best: tuple[int, int, str] | None = None
    for start in range(len(words)):
        joined = ""
        for word in words[start:start + 8]:
            boundary = len(joined)
            joined += word
            for end in range(boundary + 1, len(joined) + 1):
                model_type = candidates.get(joined[:end])
                if model_type is None or (end < len(joined) and not joined[end].isdigit()):
                    continue
                score = (int(start == 0), end, model_type)
                if best is None or score[:2] > best[:2]:
                    best = score
    return best[2] if best else None


@functools.lru_cache(maxsize=4)
def _name_candidates(known_types: tuple[str, ...]) -> dict[str, str]:
    """Joined words of every model type and naming pattern -> model type."""
    candidates = {"".join(_words(t)): t for t in known_types}
    candidates.update({"".join(_words(k)): v for k, v in NAME_PATTERNS.items()
                       if v in known_types})
    return candidates


def model_type_from_name(name: str, known_types: tuple[str, ...]) -> str | None:
    """Return the model type a model name most likely means, or ``None``.

    The name's words (``org/Qwen2-VL-7B`` -> qwen2, vl, 7b) are matched against every
    installed model type and the well-known naming patterns (:data:`NAME_PATTERNS`), in the
    repository part of the name first, then in the whole name (``distil-whisper/...``), then
    both again with words split at case changes (``CohereForAI``); last, a word ending in a
    common model type (``finbert``) counts.
    """
    candidates = _name_candidates(known_types)
    repo = name.rsplit("/", 1)[-1]
    for split in (_words, _camel_words):
        for text in dict.fromkeys((repo, name)):
            found = _match_words(split(text), candidates)
            if found:
                return _moe_variant(found, _words(repo), known_types)
    for word in _words(repo):
        for suffix in _SUFFIX_TYPES:
            if word.endswith(suffix) and suffix in known_types:
                return suffix
    return None


def _moe_variant(model_type: str, words: list[str], known_types: tuple[str, ...]) -> str:
    """``<type>_moe`` when the name says mixture of experts (``MoE``, ``A3B``) and it exists."""
    variant = model_type + _MOE_SUFFIX
    says_moe = _MOE_SUFFIX.removeprefix("_") in words or any(_ACTIVE_PARAMS.match(w)
                                                               for w in words)
    return variant if says_moe and variant in known_types else model_type


def _type_of_class(class_name: str, tables: autotables.AutoTables) -> str | None:
    """The model type of a class: from the auto tables, else the longest type it starts with."""
    if class_name in tables.type_by_class:
        return tables.type_by_class[class_name]
    squashed = class_name.lower()
    prefixes = [t for t in tables.config_types if squashed.startswith("".join(_words(t)))]
    return max(prefixes, key=len) if prefixes else None


def gather_evidence(ref: ModelRef) -> ModelRef:
    """Fill ``model_type``, ``signal`` and ``evidence`` from the strongest available signal.

    Order: the config's ``model_type``, its ``architectures``, an explicit class name,
    explicit tasks, then the name alone.
    """
    tables = autotables.load()
    if ref.model_type:
        return ref
    for arch in ref.architectures:
        if arch in tables.type_by_class:
            return dataclasses.replace(ref, model_type=tables.type_by_class[arch],
                                       evidence=ref.evidence + f"; architecture {arch}")
    model_type = _type_of_class(ref.model_class, tables) if ref.model_class else None
    if model_type:
        return dataclasses.replace(ref, model_type=model_type, signal="class",
                                   evidence=f"model class {ref.model_class}")
    if ref.tasks:
        return dataclasses.replace(ref, signal="task",
                                   evidence=f"tasks {', '.join(ref.tasks)}")
    if ref.kind == "hub" and ref.config is None:
        model_type = model_type_from_name(ref.spec, tables.config_types)
        if model_type:
            return dataclasses.replace(
                ref, model_type=model_type, signal="name",
                evidence=f"name {ref.spec!r} matches model type {model_type!r} "
                         f"({ref.evidence})")
    return ref


def reference_of(ref: ModelRef) -> Label:
    """Return the TAXONOMY.md labels of a resolved reference."""
    if ref.kind == "composite":
        return composition_label(reference_of(gather_evidence(ref.components[-1])))
    if ref.config is not None and not ref.model_type:
        label = diffusers_label(ref.config)
        if label is not None:
            return label
    if ref.model_type:
        tasks = autotables.load().tasks(ref.model_type)
        config = (lambda: ref.config) if ref.config is not None else None
        return reference_label(ref.model_type, tasks, config)
    if ref.tasks:
        return reference_label("", task_names(ref.tasks))
    classes = ref.architectures or ((ref.model_class,) if ref.model_class else ())
    if classes:
        return no_rule_label(f"{classes[0]} is in no auto-model table of the installed "
                             "transformers")
    return no_rule_label("no config, class, task or known name")


_INFOS: weakref.WeakKeyDictionary[Plugins, tuple[list[PipelineInfo], list[HookError]]] = \
    weakref.WeakKeyDictionary()


def pipeline_infos(plugins: Plugins) -> tuple[list[PipelineInfo], list[HookError]]:
    """Every installed pipeline's declaration (``hwaccel_pipeline_info``), in plugin-name
    order, and the errors of the plugins that failed to declare; asked once per ``plugins``."""
    if plugins not in _INFOS:
        results, errors = plugins.call_each("hwaccel_pipeline_info")
        _INFOS[plugins] = ([info for _, info in results], errors)
    return _INFOS[plugins]


def takes(info: PipelineInfo, label: Label, ref: ModelRef) -> bool:
    """Whether a pipeline takes a model: one of its rules matches the model's labels
    (:func:`hwaccel.kit.taxonomy.rule_matches`), or, for a pipeline that declares no rule,
    TAXONOMY.md's default pipeline (``label.pipeline``, as the rule gives it) is its name."""
    if not info.takes:
        return label.pipeline == info.name
    tasks = model_tasks(ref)
    return any(rule_matches(rule, label, ref.model_type, tasks) for rule in info.takes)


def taking_pipeline(label: Label, ref: ModelRef, infos: list[PipelineInfo]) -> str | None:
    """The pipeline that takes a model: of those that take it (:func:`takes`), the one of
    highest precedence, ties broken by plugin name; ``None`` when none does."""
    taking = [info for info in infos if takes(info, label, ref)]
    if not taking:
        return None
    return min(taking, key=lambda info: (-info.precedence, info.plugin or "")).name


def classify_ref(ref: ModelRef, plugins: Plugins) -> ClassifyOutcome:
    """Classify a resolved reference: evidence, reference label, the pipeline that takes it,
    then the plugins' claims.

    The label handed to the claims names the pipeline that takes the model; when no
    installed pipeline takes it the label keeps TAXONOMY.md's default pipeline, which the
    reason then names with the distribution to install.
    """
    ref = gather_evidence(ref)
    label = reference_of(ref)
    infos, errors = pipeline_infos(plugins)
    pipeline = taking_pipeline(label, ref, infos)
    if pipeline is not None:
        label = dataclasses.replace(label, pipeline=pipeline)
    ref = dataclasses.replace(ref, label=label)
    claims, claim_errors = plugins.call_each("hwaccel_classify", model=ref)
    errors = [*errors, *claim_errors]
    if claims:
        # claims come in plugin-name order and max() keeps the first of equals
        best = max(claims, key=lambda claim: claim[1].confidence)
        return ClassifyOutcome(best[1], errors)
    if pipeline is not None:
        reason = f"{label.rule}; pipeline {pipeline!r} takes the model but no plugin claims it"
    elif label.pipeline:
        reason = (f"{label.rule}; no installed plugin claims pipeline {label.pipeline!r}"
                  f" (install hwaccel-pipeline-{label.pipeline})")
    else:
        reason = label.rule
    classification = Classification(
        model=ref.spec, family=label.family, subfamily=label.subfamily,
        pipeline=label.pipeline, model_type=ref.model_type, model_class=ref.model_class,
        confidence=SIGNAL_CONFIDENCE[ref.signal] if label.pipeline else 0.0,
        signal=ref.signal, reason=f"{ref.evidence}; {reason}".lstrip("; "),
        tasks=tuple(sorted(autotables.load().tasks(ref.model_type or ""))))
    return ClassifyOutcome(classification, errors)


def classify(spec: str, plugins: Plugins, *, model_class: str | None = None,
             tasks: tuple[str, ...] = ()) -> ClassifyOutcome:
    """Resolve and classify one model reference string."""
    return classify_ref(resolve_model(spec, model_class=model_class, tasks=tasks), plugins)
