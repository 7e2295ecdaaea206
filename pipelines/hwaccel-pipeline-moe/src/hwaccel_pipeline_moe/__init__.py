"""hwaccel pipeline ``moe``: mixture-of-experts language models (Mixtral, Qwen2-MoE, DeepSeek).

Claims every model whose TAXONOMY.md reference label has pipeline ``moe`` (a generative text
model whose default config declares more than one expert), keeps the text label's subfamily
(``causal_lm`` or ``seq2seq``) and reports the text architecture as the ``text`` pipeline does.
The workload reuses the text workload and adds the expert count, top-k, router logits and the
experts each token is routed to. Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

from hwaccel import Classification, ModelRef, TemplatePart, hookimpl

NAME = "moe"
WORKLOAD = "hwaccel_pipeline_moe.workload:MoeWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:mixtral",)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim mixture-of-experts text models (TAXONOMY rule 6 or 7 with more than one expert)."""
    from hwaccel.kit.claims import claim

    return claim(model, NAME, WORKLOAD)


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the mixture-of-experts test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_moe.py.j2",
                         example_models=EXAMPLE_MODELS)
