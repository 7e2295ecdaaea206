"""hwaccel pipeline ``multimodal``: vision- and audio-language models (LLaVA, PaliGemma, Idefics,
Qwen2-VL, Qwen2-Audio), document question answering (LayoutLM) and visual question answering
(ViLT).

Claims every model whose TAXONOMY.md reference label has pipeline ``multimodal`` (rule 3: an
image-text-to-text, multimodal-LM, VQA, document-QA or vision-to-sequence task in the
installed transformers' auto-model tables) and gives it a subfamily from the same tasks, by
the first row of :data:`SUBFAMILY_TASKS` that meets them:

================================ ===================================================
subfamily                        auto-model tasks
================================ ===================================================
``vision_language_generation``   IMAGE_TEXT_TO_TEXT, MULTIMODAL_LM, VISION_2_SEQ
``visual_question_answering``    VISUAL_QUESTION_ANSWERING (ViLT: answer classifier)
``document_question_answering``  DOCUMENT_QUESTION_ANSWERING (LayoutLM: span extractor)
================================ ===================================================

The workload (:mod:`hwaccel_pipeline_multimodal.workload`) runs all three: media (an image,
or a recording for speech-language models) and a prompt in; next-token logits, answer spans
or answer scores out. Importing this module imports neither torch, transformers nor PIL.
"""

from __future__ import annotations

from collections.abc import Iterable

from hwaccel import Classification, LabelRule, ModelRef, PipelineInfo, TemplatePart, hookimpl

NAME = "multimodal"
WORKLOAD = "hwaccel_pipeline_multimodal.workload:MultimodalWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:llava",)
DESCRIPTION = ("Vision- and audio-language models, document and visual question answering "
               "(TAXONOMY.md rule 3).")
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("image-text-to-text",)),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers", "pillow")
GENERATION = "vision_language_generation"
SUBFAMILY_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (GENERATION, ("IMAGE_TEXT_TO_TEXT", "MULTIMODAL_LM", "VISION_2_SEQ")),
    ("visual_question_answering", ("VISUAL_QUESTION_ANSWERING",)),
    ("document_question_answering", ("DOCUMENT_QUESTION_ANSWERING",)),
)


def subfamily_of(tasks: Iterable[str]) -> str | None:
    """Return the multimodal subfamily of a set of auto-model TASK names, or ``None``."""
    from hwaccel.kit.pipeline_parts import subfamily_by_tasks

    return subfamily_by_tasks(tasks, SUBFAMILY_TASKS)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the multimodal pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim generative vision-language models (TAXONOMY rule 3) with their subfamily."""
    from hwaccel.kit.claims import claim
    from hwaccel.kit.pipeline_parts import model_tasks

    if model.label is None or model.label.pipeline != NAME:
        return None
    return claim(model, NAME, WORKLOAD, subfamily=subfamily_of(model_tasks(model)))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the multimodal test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_multimodal.py.j2")
