"""hwaccel pipeline ``vision-text``: image-text dual encoders (CLIP, SigLIP, BLIP, OWL-ViT).

Claims every model whose TAXONOMY.md reference label has pipeline ``vision-text`` (rule 2: a
zero-shot image classification, zero-shot object detection or retrieval task), names its
subfamily from those tasks by :data:`SUBFAMILIES`, and supplies the workload and the
generated-test template. Importing this module imports neither torch, transformers nor PIL.
"""

from __future__ import annotations

from hwaccel import (
    Classification,
    LabelRule,
    ModelRef,
    PipelineInfo,
    TemplatePart,
    hookimpl,
)

NAME = "vision-text"
WORKLOAD = "hwaccel_pipeline_vision_text.workload:VisionTextWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:clip",)
DESCRIPTION = ("Image-text dual encoders, open-vocabulary detectors and retrievers "
               "(TAXONOMY.md rule 2).")
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("zero-shot", "dual-encoder")),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers", "pillow")

# The one table of vision-text subfamilies: the first row whose TASK (an auto-model table of
# the installed transformers) lists the model type gives the subfamily, and that TASK's
# table (``MODEL_FOR_<TASK>_MAPPING_NAMES``) the model class the workload runs. Detection
# comes first: OWL-ViT-style detectors score text queries against image regions, dual
# encoders (CLIP, SigLIP, BLIP, ALIGN) score whole images against whole texts, and
# retrievers (ColPali) embed document pages and queries for late interaction.
SUBFAMILIES: tuple[tuple[str, str], ...] = (
    ("open_vocabulary_detector", "ZERO_SHOT_OBJECT_DETECTION"),
    ("dual_encoder", "ZERO_SHOT_IMAGE_CLASSIFICATION"),
    ("document_retriever", "RETRIEVAL"),
)
FALLBACK_SUBFAMILY = "dual_encoder"


def subfamily_of(tasks: frozenset[str]) -> str:
    """Return the vision-text subfamily of a model type's auto-model ``tasks``."""
    return next((name for name, task in SUBFAMILIES if task in tasks), FALLBACK_SUBFAMILY)


def task_of(subfamily: str) -> str:
    """The auto-model TASK whose model class the workload runs for ``subfamily``."""
    return dict(SUBFAMILIES).get(subfamily, dict(SUBFAMILIES)[FALLBACK_SUBFAMILY])


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the vision-text pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim image-text models (TAXONOMY rule 2) with their subfamily by task."""
    from hwaccel.kit.claims import claim
    from hwaccel.kit.pipeline_parts import model_tasks

    if model.label is None or model.label.pipeline != NAME:
        return None
    tasks = model_tasks(model)
    return claim(model, NAME, WORKLOAD, subfamily=subfamily_of(tasks))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the vision-text test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_vision_text.py.j2")
