"""Every model type of the installed transformers is labelled as TAXONOMY.md says.

The expected labels come from an oracle written in this file straight from TAXONOMY.md's
table: it imports transformers' auto tables itself and builds default configs for the expert
count, sharing no code with hwaccel's classifier (which reads the source and a disk cache).
"""

from __future__ import annotations

import fnmatch

import pytest

from hwaccel.models.classify import classify
from hwaccel.plugins import load

# TAXONOMY.md, "The reference rule", rows 2-7, and the state-space / moe refinements; row 2
# also takes a type listed only as a base model whose base class has text and image (or
# video) features: a CLIP-like contrastive model published without a zero-shot task (X-CLIP).
ROW2 = {"ZERO_SHOT_IMAGE_CLASSIFICATION", "ZERO_SHOT_OBJECT_DETECTION", "RETRIEVAL"}
ROW3 = {"IMAGE_TEXT_TO_TEXT", "MULTIMODAL_LM", "VISUAL_QUESTION_ANSWERING",
        "DOCUMENT_QUESTION_ANSWERING", "VISION_2_SEQ"}
ROW4 = {"SPEECH_SEQ_2_SEQ", "CTC", "AUDIO_CLASSIFICATION", "AUDIO_FRAME_CLASSIFICATION",
        "AUDIO_XVECTOR", "TEXT_TO_SPECTROGRAM", "TEXT_TO_WAVEFORM", "RNNT", "TDT"}
ROW5 = ["IMAGE", "IMAGE_CLASSIFICATION", "*_SEGMENTATION", "OBJECT_DETECTION",
        "DEPTH_ESTIMATION", "VIDEO_CLASSIFICATION", "MASK_GENERATION", "KEYPOINT_*",
        "IMAGE_TO_IMAGE", "*_ESTIMATION", "TEXT_RECOGNITION", "TABLE_RECOGNITION", "BACKBONE",
        "MASKED_IMAGE_MODELING", "CAUSAL_IMAGE_MODELING", "IMAGE_MATTING"]
ROW7 = {"MASKED_LM", "TEXT_ENCODING", "SEQUENCE_CLASSIFICATION", "TOKEN_CLASSIFICATION",
        "QUESTION_ANSWERING", "MULTIPLE_CHOICE", "NEXT_SENTENCE_PREDICTION",
        "TABLE_QUESTION_ANSWERING", "PRETRAINING"}
RECURRENT = {"mamba", "mamba2", "falcon_mamba", "bamba", "jamba", "zamba", "zamba2",
             "falcon_h1", "nemotron_h", "granitemoehybrid", "rwkv", "recurrent_gemma", "xlstm"}
EXPERT_FIELDS = ["num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts",
                 "n_experts", "num_experts_per_layer"]


def _transformers_tasks() -> dict[str, set[str]]:
    from transformers.models.auto import modeling_auto

    tasks: dict[str, set[str]] = {}
    for name in dir(modeling_auto):
        if name.startswith("MODEL_FOR_") and name.endswith("_MAPPING_NAMES"):
            task = name.removeprefix("MODEL_FOR_").removesuffix("_MAPPING_NAMES")
            for model_type in getattr(modeling_auto, name):
                tasks.setdefault(model_type, set()).add(task)
    return tasks


def _experts(model_type: str) -> int:
    from transformers import AutoConfig

    try:
        config = AutoConfig.for_model(model_type).to_dict()
    except Exception:  # noqa: BLE001 - a config that cannot be built declares no experts
        return 0
    found = [0]
    for scope in (config, config.get("text_config")):
        for field in EXPERT_FIELDS:
            value = (scope or {}).get(field) if isinstance(scope, dict) else None
            values = value if isinstance(value, list) else [value]
            found += [v for v in values if type(v) is int]
    return max(found)


def _dual_encoder(model_type: str) -> bool:
    """Row 2 for base-only types: the base class has text and image or video features."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    names = MODEL_MAPPING_NAMES.get(model_type, ())
    for name in [names] if isinstance(names, str) else names:
        try:
            cls = getattr(transformers, name)
            if hasattr(cls, "get_text_features") and (
                    hasattr(cls, "get_image_features") or hasattr(cls, "get_video_features")):
                return True
        except Exception:  # noqa: BLE001 - a class that cannot be imported has no features
            continue
    return False


def expected(model_type: str, tasks: set[str]) -> tuple[str, str | None, str | None]:
    """(family, subfamily, pipeline) by TAXONOMY.md; subfamily only for the text families."""
    if model_type == "rag":
        return "text_generation", "seq2seq", "rag"
    if tasks & ROW2:
        return "multimodal", None, "vision-text"
    if tasks & ROW3:
        return "multimodal", None, "multimodal"
    if tasks & ROW4:
        return "audio", None, "audio"
    if any(fnmatch.fnmatchcase(t, p) for t in tasks for p in ROW5):
        return "vision", None, "vision"
    if "SEQ_TO_SEQ_CAUSAL_LM" in tasks:
        family, sub = "text_generation", "seq2seq"
    elif "CAUSAL_LM" in tasks and "MASKED_LM" not in tasks:
        family, sub = "text_generation", "causal_lm"
    elif tasks & ROW7:
        family, sub = "embedding", "masked_lm" if "MASKED_LM" in tasks else "encoder"
    elif not tasks and _dual_encoder(model_type):  # in no MODEL_FOR_<TASK> table
        return "multimodal", None, "vision-text"
    else:
        return "unknown", None, None
    if model_type in RECURRENT:
        return family, sub, "state-space"
    if _experts(model_type) > 1:
        return family, sub, "moe"
    return family, sub, "text"


@pytest.mark.slow
def test_every_model_type_is_labelled_as_taxonomy_says():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    tasks = _transformers_tasks()
    plugins = load(strict=True)
    wrong, unclaimed, labelled = [], [], 0
    for model_type in sorted(CONFIG_MAPPING_NAMES):
        family, sub, pipeline = expected(model_type, tasks.get(model_type, set()))
        got = classify(f"tiny:{model_type}", plugins).classification
        subfamily = got.subfamily if family in ("embedding", "text_generation") else None
        if (got.family, subfamily, got.pipeline) != (family, sub, pipeline):
            wrong.append(f"{model_type}: got {got.family}/{subfamily}/{got.pipeline}, "
                         f"expected {family}/{sub}/{pipeline}")
        if pipeline is not None:
            labelled += 1
            if got.plugin != pipeline or not got.workload:
                unclaimed.append(f"{model_type} ({pipeline}): claimed by {got.plugin}")
    assert labelled > 300, "expected several hundred labelled model types"
    assert not wrong, f"{len(wrong)} model types mislabelled:\n" + "\n".join(wrong)
    assert not unclaimed, f"{len(unclaimed)} not claimed by their pipeline:\n" + \
        "\n".join(unclaimed)
