"""hwaccel pipeline ``moe``: mixture-of-experts language models (Mixtral, Qwen2-MoE, DeepSeek).

Claims every model whose TAXONOMY.md reference label has pipeline ``moe`` (a generative text
model whose default config declares more than one expert), keeps the text label's subfamily
(``causal_lm`` or ``seq2seq``) and reports the text architecture as the ``text`` pipeline does.
The workload reuses the text workload and adds the expert count, top-k, router logits and the
experts each token is routed to. Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

from importlib.resources import files

from hwaccel import Classification, ModelRef, TemplatePart, hookimpl

NAME = "moe"
WORKLOAD = "hwaccel_pipeline_moe.workload:MoeWorkload"
ARCHITECTURES = {"causal_lm": "decoder-only", "seq2seq": "encoder-decoder"}
IMPORTS = """\
import torch
from hwaccel.types import Classification
from hwaccel.workloads import load_workload"""
REQUIRED_SLOTS = ("imports", "availability", "placement", "synchronize", "cleanup", "tolerance")


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim mixture-of-experts text models (TAXONOMY rule 6 or 7 with more than one expert)."""
    from hwaccel.classify import claim

    subfamily = model.label.subfamily if model.label else None
    return claim(model, NAME, WORKLOAD, subfamily=subfamily,
                 architecture=ARCHITECTURES.get(subfamily or ""))


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the mixture-of-experts test-module template."""
    if pipeline != NAME:
        return None
    template = files(__package__).joinpath("test_moe.py.j2").read_text(encoding="utf-8")
    return TemplatePart(owner="pipeline", name=NAME, template=template,
                        snippets={"imports": IMPORTS}, required_slots=REQUIRED_SLOTS)
