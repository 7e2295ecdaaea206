"""hwaccel pipeline ``vision``: image models (classification, detection, segmentation, backbones).

Claims every model whose TAXONOMY.md reference label has pipeline ``vision`` (rule 5: an
image or video task), names its subfamily from its auto-model tasks by :data:`SUBFAMILIES`,
and supplies the workload and the generated-test template. Importing this module imports
neither torch, transformers nor PIL.
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

NAME = "vision"
WORKLOAD = "hwaccel_pipeline_vision.workload:VisionWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:vit",)
DESCRIPTION = "Image and video models (TAXONOMY.md rule 5)."
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("image-video",)),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers", "pillow")

# The one table of vision subfamilies. Rows are tried top to bottom; the first row one of
# whose TASKs (auto-model tables of the installed transformers) lists the model type gives
# the subfamily, and the first of that row's TASKs the model type has picks the model class
# the workload runs (``MODEL_FOR_<TASK>_MAPPING_NAMES``; ``BASE`` is ``MODEL_MAPPING_NAMES``).
# The richest head wins: a video model before its frame encoder, detection before the
# segmentation head DETR also has, depth before DPT's segmentation head, segmentation before
# the classifier head segformer/beit also have. The last column: class-name endings that,
# for a checkpoint whose config names its architecture, select the row directly (a
# ``ViTModel`` checkpoint is an encoder although the vit type has a classifier head).
SUBFAMILIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("video_classifier", ("VIDEO_CLASSIFICATION",), ("ForVideoClassification",)),
    ("object_detector", ("OBJECT_DETECTION",), ("ForObjectDetection",)),
    ("depth_estimator", ("DEPTH_ESTIMATION",), ("ForDepthEstimation",)),
    ("image_segmenter", ("SEMANTIC_SEGMENTATION", "UNIVERSAL_SEGMENTATION",
                         "INSTANCE_SEGMENTATION", "IMAGE_SEGMENTATION"),
     ("ForSemanticSegmentation", "ForUniversalSegmentation", "ForInstanceSegmentation",
      "ForSegmentation")),
    ("image_classifier", ("IMAGE_CLASSIFICATION",),
     ("ForImageClassification", "ForImageClassificationWithTeacher")),
    ("mask_generator", ("MASK_GENERATION",), ()),
    ("keypoint_detector", ("KEYPOINT_DETECTION", "KEYPOINT_MATCHING"), ()),
    ("pose_estimator", ("POSE_ESTIMATION",), ()),
    ("image_matting", ("IMAGE_MATTING",), ()),
    ("text_recognizer", ("TEXT_RECOGNITION", "TABLE_RECOGNITION"), ()),
    ("image_to_image", ("IMAGE_TO_IMAGE",), ()),
    ("image_encoder", ("BASE", "BACKBONE"), ("Model", "Backbone")),
)
# Rows a checkpoint's architecture may switch between (heads on the same image encoder).
REFINABLE = frozenset({"video_classifier", "object_detector", "depth_estimator",
                       "image_segmenter", "image_classifier", "image_encoder"})
FALLBACK_SUBFAMILY = "image_encoder"


def subfamily_of(tasks: frozenset[str], architecture: str | None = None) -> str:
    """Return the vision subfamily of a model type's auto-model ``tasks`` (:data:`SUBFAMILIES`).

    :param architecture: the checkpoint's architecture class name, when its config names
        one; its ending selects among the :data:`REFINABLE` rows the tasks allow.
    """
    by_tasks = next((row[0] for row in SUBFAMILIES if tasks & set(row[1])),
                    FALLBACK_SUBFAMILY)
    if architecture and by_tasks in REFINABLE:
        for subfamily, row_tasks, endings in SUBFAMILIES:
            if (subfamily in REFINABLE and tasks & set(row_tasks)
                    and architecture.endswith(endings)):
                return subfamily
    return by_tasks


def row_tasks(subfamily: str) -> tuple[str, ...]:
    """The TASKs of a subfamily's row, in the order the workload tries their model classes."""
    for name, tasks, _ in SUBFAMILIES:
        if name == subfamily:
            return tasks
    return ("BASE", "BACKBONE")


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the vision pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim image and video models (TAXONOMY rule 5) with their subfamily by task."""
    from hwaccel.kit.claims import claim
    from hwaccel.kit.pipeline_parts import model_tasks

    if model.label is None or model.label.pipeline != NAME:
        return None
    tasks = model_tasks(model)
    architecture = next(iter(model.architectures), None)
    return claim(model, NAME, WORKLOAD, subfamily=subfamily_of(tasks, architecture))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the vision test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_vision.py.j2")
