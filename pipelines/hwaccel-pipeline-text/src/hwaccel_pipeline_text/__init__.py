"""hwaccel pipeline ``text``: embedding and text-generation models.

Claims every model whose TAXONOMY.md reference label (derived by the core from the installed
transformers' auto-model tables) has pipeline ``text``, reports its text architecture, and
supplies the workload and the generated-test template. Importing this module imports neither
torch nor transformers.
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

NAME = "text"
WORKLOAD = "hwaccel_pipeline_text.workload:TextWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:gpt2", "minilm")
DESCRIPTION = "Embedding and text-generation models (TAXONOMY.md rules 6 and 7)."
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("generative-lm", "encoder")),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers",)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the text pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim text models: TAXONOMY rules 6 (generative LM) and 7 (encoder tasks)."""
    from hwaccel.kit.claims import claim

    return claim(model, NAME, WORKLOAD)


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the text test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_text.py.j2")
