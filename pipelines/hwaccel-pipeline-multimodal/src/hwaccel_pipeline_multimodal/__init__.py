"""hwaccel pipeline ``multimodal``: generative vision-language models (LLaVA, PaliGemma, Idefics,
Qwen2-VL).

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

The workload runs the generative subfamily (an image plus a text prompt in, next-token logits
out); the two extractive ones are claimed, labelled, and refused by the workload with a clear
error. Importing this module imports neither torch, transformers nor PIL.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from hwaccel import Classification, ModelRef, TemplatePart, hookimpl

NAME = "multimodal"
WORKLOAD = "hwaccel_pipeline_multimodal.workload:MultimodalWorkload"
GENERATION = "vision_language_generation"
SUBFAMILY_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (GENERATION, ("IMAGE_TEXT_TO_TEXT", "MULTIMODAL_LM", "VISION_2_SEQ")),
    ("visual_question_answering", ("VISUAL_QUESTION_ANSWERING",)),
    ("document_question_answering", ("DOCUMENT_QUESTION_ANSWERING",)),
)
IMPORTS = """\
import torch
from hwaccel.types import Classification
from hwaccel.workloads import load_workload"""
REQUIRED_SLOTS = ("imports", "availability", "placement", "synchronize", "cleanup", "tolerance")


def subfamily_of(tasks: Iterable[str]) -> str | None:
    """Return the multimodal subfamily of a set of auto-model TASK names, or ``None``."""
    tasks = set(tasks)
    for subfamily, names in SUBFAMILY_TASKS:
        if tasks.intersection(names):
            return subfamily
    return None


def model_tasks(model: ModelRef) -> frozenset[str]:
    """The auto-model tasks of a reference: its model type's tables, else its explicit tasks."""
    from hwaccel import autotables
    from hwaccel.classify import task_names

    if model.model_type:
        return autotables.load().tasks(model.model_type)
    return task_names(model.tasks)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim generative vision-language models (TAXONOMY rule 3) with their subfamily."""
    from hwaccel.classify import claim

    if model.label is None or model.label.pipeline != NAME:
        return None
    return claim(model, NAME, WORKLOAD, subfamily=subfamily_of(model_tasks(model)))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the multimodal test-module template."""
    if pipeline != NAME:
        return None
    template = files(__package__).joinpath("test_multimodal.py.j2").read_text(
        encoding="utf-8")
    return TemplatePart(owner="pipeline", name=NAME, template=template,
                        snippets={"imports": IMPORTS}, required_slots=REQUIRED_SLOTS)
