"""hwaccel pipeline ``moe``: mixture-of-experts language models (Mixtral, Qwen2-MoE, DeepSeek).

Takes the text models (TAXONOMY.md rules 6 and 7) whose config declares more than one expert,
above the ``text`` pipeline and below ``state-space`` (a recurrent model with experts is
that pipeline's), keeps the text label's subfamily (``causal_lm`` or ``seq2seq``) and
reports the text architecture as the ``text`` pipeline does.
The workload reuses the text workload and adds the expert count, top-k, router logits and the
experts each token is routed to. Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

from hwaccel import Classification, LabelRule, ModelRef, PipelineInfo, TemplatePart, hookimpl

NAME = "moe"
WORKLOAD = "hwaccel_pipeline_moe.workload:MoeWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:mixtral",)
DESCRIPTION = ("Mixture-of-experts language models (TAXONOMY.md rules 6 and 7, more than one "
               "expert).")
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("generative-lm", "encoder"), min_experts=2),)
# Above the text pipeline (whose rules it shares), below state-space: a recurrent
# model with experts (Jamba) is state-space's.
PRECEDENCE = 10
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers",)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the moe pipeline: the labels it takes, its precedence, its example
    models."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        precedence=PRECEDENCE, example_models=EXAMPLE_MODELS,
                        versions=VERSIONS)


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

    return template_part(NAME, __package__, "test_moe.py.j2")
