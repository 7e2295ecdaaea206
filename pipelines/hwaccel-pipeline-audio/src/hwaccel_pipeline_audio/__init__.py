"""hwaccel pipeline ``audio``: speech and audio models (Whisper, wav2vec2, audio classifiers).

Claims every model whose TAXONOMY.md reference label has pipeline ``audio`` (rule 4: a
speech or audio task in the installed transformers' auto-model tables) and gives it a
subfamily from the same tasks, by the first row of :data:`SUBFAMILY_TASKS` that meets them:

==================== ===========================================================
subfamily            auto-model tasks
==================== ===========================================================
``speech_recognition`` SPEECH_SEQ_2_SEQ, CTC, RNNT, TDT
``audio_classifier``   AUDIO_CLASSIFICATION, AUDIO_FRAME_CLASSIFICATION, AUDIO_XVECTOR
``speech_synthesis``   TEXT_TO_SPECTROGRAM, TEXT_TO_WAVEFORM
==================== ===========================================================

(whisper, which is also an audio classifier, is ``speech_recognition``: the rows are tried
top to bottom.) Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from hwaccel import Classification, ModelRef, TemplatePart, hookimpl

NAME = "audio"
WORKLOAD = "hwaccel_pipeline_audio.workload:AudioWorkload"
SUBFAMILY_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("speech_recognition", ("SPEECH_SEQ_2_SEQ", "CTC", "RNNT", "TDT")),
    ("audio_classifier", ("AUDIO_CLASSIFICATION", "AUDIO_FRAME_CLASSIFICATION",
                          "AUDIO_XVECTOR")),
    ("speech_synthesis", ("TEXT_TO_SPECTROGRAM", "TEXT_TO_WAVEFORM")),
)
IMPORTS = """\
import torch
from hwaccel.types import Classification
from hwaccel.workloads import load_workload"""
REQUIRED_SLOTS = ("imports", "availability", "placement", "synchronize", "cleanup", "tolerance")


def subfamily_of(tasks: Iterable[str]) -> str | None:
    """Return the audio subfamily of a set of auto-model TASK names, or ``None``."""
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
    """Claim audio models (TAXONOMY rule 4) with their subfamily from the auto-model tasks."""
    from hwaccel.classify import claim

    if model.label is None or model.label.pipeline != NAME:
        return None
    return claim(model, NAME, WORKLOAD, subfamily=subfamily_of(model_tasks(model)))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the audio test-module template."""
    if pipeline != NAME:
        return None
    template = files(__package__).joinpath("test_audio.py.j2").read_text(encoding="utf-8")
    return TemplatePart(owner="pipeline", name=NAME, template=template,
                        snippets={"imports": IMPORTS}, required_slots=REQUIRED_SLOTS)
