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

from hwaccel import Classification, LabelRule, ModelRef, PipelineInfo, TemplatePart, hookimpl

NAME = "audio"
WORKLOAD = "hwaccel_pipeline_audio.workload:AudioWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:whisper",)
DESCRIPTION = "Speech and audio models (TAXONOMY.md rule 4)."
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("speech-audio",)),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers", "numpy")
SUBFAMILY_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("speech_recognition", ("SPEECH_SEQ_2_SEQ", "CTC", "RNNT", "TDT")),
    ("audio_classifier", ("AUDIO_CLASSIFICATION", "AUDIO_FRAME_CLASSIFICATION",
                          "AUDIO_XVECTOR")),
    ("speech_synthesis", ("TEXT_TO_SPECTROGRAM", "TEXT_TO_WAVEFORM")),
)


def subfamily_of(tasks: Iterable[str]) -> str | None:
    """Return the audio subfamily of a set of auto-model TASK names, or ``None``."""
    from hwaccel.kit.pipeline_parts import subfamily_by_tasks

    return subfamily_by_tasks(tasks, SUBFAMILY_TASKS)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the audio pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim audio models (TAXONOMY rule 4) with their subfamily from the auto-model tasks."""
    from hwaccel.kit.claims import claim
    from hwaccel.kit.pipeline_parts import model_tasks

    if model.label is None or model.label.pipeline != NAME:
        return None
    return claim(model, NAME, WORKLOAD, subfamily=subfamily_of(model_tasks(model)))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the audio test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_audio.py.j2")
