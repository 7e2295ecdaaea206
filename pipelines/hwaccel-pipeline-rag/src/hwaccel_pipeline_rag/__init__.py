"""hwaccel pipeline ``rag``: retrieve-then-generate compositions and transformers' Rag models.

Claims the models whose TAXONOMY.md reference label has pipeline ``rag``: transformers' ``rag``
model type (rule 1) and a composition ``rag:<retriever>+<generator>`` of an embedding model and
a text generator over an in-memory document store. Supplies the workload (retrieval over a
fixed store shipped in this package, then generation) and the generated-test template.
Importing this module imports neither torch nor transformers.
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

NAME = "rag"
WORKLOAD = "hwaccel_pipeline_rag.workload:RagWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("rag:minilm+tiny:gpt2",)
DESCRIPTION = ("Retrieve-then-generate compositions and transformers' Rag models "
               "(TAXONOMY.md rule 1).")
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("rag-type", "composition")),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("transformers",)
ARCHITECTURE = "retrieve-then-generate"
GENERATORS = ("causal_lm", "seq2seq")


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the rag pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS,
                        composition=("retriever", "generator"))


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim Rag models (TAXONOMY rule 1) and retrieve-then-generate compositions."""
    import dataclasses

    from hwaccel.kit.claims import claim

    classification = claim(model, NAME, WORKLOAD, architecture=ARCHITECTURE)
    problem = composition_problem(model) if classification is not None else None
    if problem is None:
        return classification
    # still a rag model, but one this pipeline cannot run: no workload, and the reason why
    return dataclasses.replace(classification, workload=None,
                               reason=f"{classification.reason}; cannot run: {problem}")


def composition_problem(model: ModelRef) -> str | None:
    """Why a composition's parts cannot be retriever and generator, or ``None`` if they can.

    The retriever must be an embedding model, the generator a causal or sequence-to-sequence
    text generator (TAXONOMY.md labels of the parts; reading them imports no model code).
    """
    if model.kind != "composite":
        return None
    from hwaccel.kit.references import label_of

    retriever, generator = model.components
    r_label, g_label = (label_of(part) for part in model.components)
    if r_label.family != "embedding":
        return f"the retriever {retriever.spec!r} is {r_label.family}, not an embedding model"
    if g_label.family != "text_generation" or g_label.subfamily not in GENERATORS:
        return (f"the generator {generator.spec!r} is {g_label.family}, not a causal or "
                "sequence-to-sequence text generator")
    return None


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the rag test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_rag.py.j2")
