"""hwaccel pipeline ``text``: embedding and text-generation models.

Claims every model whose TAXONOMY.md reference label (derived by the core from the installed
transformers' auto-model tables) has pipeline ``text``, reports its text architecture, and
supplies the workload and the generated-test template. Importing this module imports neither
torch nor transformers.
"""

from __future__ import annotations

from importlib.resources import files

from hwaccel import Classification, ModelRef, TemplatePart, hookimpl

NAME = "text"
WORKLOAD = "hwaccel_pipeline_text.workload:TextWorkload"
ARCHITECTURES = {"masked_lm": "encoder-only", "encoder": "encoder-only",
                 "causal_lm": "decoder-only", "seq2seq": "encoder-decoder"}
IMPORTS = """\
import torch
from hwaccel.types import Classification
from hwaccel.workloads import load_workload"""
REQUIRED_SLOTS = ("imports", "availability", "placement", "synchronize", "cleanup", "tolerance")


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim text models: TAXONOMY rules 6 (generative LM) and 7 (encoder tasks)."""
    label = model.label
    if label is None or label.pipeline != NAME:
        return None
    from hwaccel import autotables
    from hwaccel.classify import SIGNAL_CONFIDENCE

    return Classification(
        model=model.spec, family=label.family, subfamily=label.subfamily, pipeline=NAME,
        architecture=ARCHITECTURES.get(label.subfamily or ""), model_type=model.model_type,
        model_class=model.model_class or next(iter(model.architectures), None),
        confidence=SIGNAL_CONFIDENCE.get(model.signal, 0.0), signal=model.signal,
        reason=f"{model.evidence}; {label.rule}",
        tasks=tuple(sorted(autotables.load().tasks(model.model_type or ""))),
        workload=WORKLOAD)


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the text test-module template."""
    if pipeline != NAME:
        return None
    template = files(__package__).joinpath("test_text.py.j2").read_text(encoding="utf-8")
    return TemplatePart(owner="pipeline", name=NAME, template=template,
                        snippets={"imports": IMPORTS}, required_slots=REQUIRED_SLOTS)
