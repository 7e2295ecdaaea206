"""hwaccel pipeline ``state-space``: recurrent-state sequence models (Mamba, Mamba2, Jamba, RWKV).

Claims every model whose TAXONOMY.md reference label has pipeline ``state-space``: SSMs and
linear RNNs, pure or hybrid with attention, whose defining property is a fixed-size recurrent
state instead of a KV cache that grows with the sequence. The workload reuses the text workload
and adds a measurement of that state. Importing this module imports neither torch nor
transformers.
"""

from __future__ import annotations

from hwaccel import Classification, ModelRef, TemplatePart, hookimpl

NAME = "state-space"
WORKLOAD = "hwaccel_pipeline_state_space.workload:StateSpaceWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:mamba",)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim recurrent-state text models (the taxonomy's state-space model types)."""
    from hwaccel.kit.claims import claim

    return claim(model, NAME, WORKLOAD)


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the state-space test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_state_space.py.j2",
                         example_models=EXAMPLE_MODELS)
