"""hwaccel pipeline ``state-space``: recurrent-state sequence models (Mamba, Mamba2, Jamba, RWKV).

Takes the text models (TAXONOMY.md rules 6 and 7) of the recurrent model types it declares
(:data:`RECURRENT_TYPES`), above the ``moe`` and ``text`` pipelines that share those rules:
SSMs and linear RNNs, pure or hybrid with attention, whose defining property is a fixed-size
recurrent state instead of a KV cache that grows with the sequence. The workload reuses the
text workload and adds a measurement of that state. Importing this module imports neither
torch nor transformers.
"""

from __future__ import annotations

from hwaccel import Classification, LabelRule, ModelRef, PipelineInfo, TemplatePart, hookimpl

NAME = "state-space"
WORKLOAD = "hwaccel_pipeline_state_space.workload:StateSpaceWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:mamba",)
DESCRIPTION = ("Recurrent-state sequence models: SSMs and linear RNNs, pure or hybrid "
               "(TAXONOMY.md rules 6 and 7, recurrent model types).")
# The recurrent-state model types of TAXONOMY.md: a fixed-size state instead of a KV cache.
RECURRENT_TYPES = ("mamba", "mamba2", "falcon_mamba", "bamba", "jamba", "zamba", "zamba2",
                   "falcon_h1", "nemotron_h", "granitemoehybrid", "rwkv", "recurrent_gemma",
                   "xlstm")
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("generative-lm", "encoder"), model_types=RECURRENT_TYPES),)
# Above moe and text (whose rules it shares): a recurrent model with experts (Jamba)
# is this pipeline's.
PRECEDENCE = 20
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers",)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the state-space pipeline: the labels it takes, its precedence, its example
    models."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        precedence=PRECEDENCE, example_models=EXAMPLE_MODELS,
                        versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim the recurrent-state text models the core handed to this pipeline."""
    from hwaccel.kit.claims import claim

    return claim(model, NAME, WORKLOAD)


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the state-space test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_state_space.py.j2")
