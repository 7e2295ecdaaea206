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
    from hwaccel.classify import claim

    subfamily = model.label.subfamily if model.label else None
    return claim(model, NAME, WORKLOAD, architecture=ARCHITECTURES.get(subfamily or ""))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the text test-module template."""
    if pipeline != NAME:
        return None
    template = files(__package__).joinpath("test_text.py.j2").read_text(encoding="utf-8")
    return TemplatePart(owner="pipeline", name=NAME, template=template,
                        snippets={"imports": IMPORTS}, required_slots=REQUIRED_SLOTS)
