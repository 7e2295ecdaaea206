"""hwaccel pipeline ``diffusion``: diffusers models and pipelines (UNet denoising loops, DDPM,
Stable Diffusion).

Claims, as TAXONOMY.md's "Outside transformers" section says (family ``vision``, subfamily
and pipeline ``diffusion``):

* diffusers folders and cached snapshots (``model_index.json``, or a model ``config.json``
  written by diffusers), which the core already labels diffusion;
* ``tiny:<ClassName>`` of a pipeline or model class the installed diffusers exports
  (``tiny:UNet2DConditionModel``, ``tiny:DDPMPipeline``), at the config's confidence;
* an explicit class name (``--class StableDiffusionPipeline``) of such a class, at the class
  signal's confidence, when nothing stronger is known about the model;
* hub names with no config here that follow well-known diffusion naming
  (``stabilityai/stable-diffusion-xl-base-1.0``), at the name signal's confidence.

The installed diffusers' class names are read from its ``__init__.py`` without importing it
(see :mod:`hwaccel_pipeline_diffusion.classes`). Importing this module imports neither torch,
transformers nor diffusers.
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

NAME = "diffusion"
FAMILY = "vision"
SUBFAMILY = "diffusion"
WORKLOAD = "hwaccel_pipeline_diffusion.workload:DiffusionWorkload"
# The models that represent this pipeline in the default `hwaccel matrix` (offline).
EXAMPLE_MODELS = ("tiny:UNet2DConditionModel",)
DESCRIPTION = "Diffusers models and pipelines (TAXONOMY.md, outside transformers)."
# The TAXONOMY.md labels this pipeline takes (rule ids of hwaccel.kit.taxonomy.RULE_IDS).
TAKES = (LabelRule(rules=("diffusers",)),)
# The distributions whose versions this pipeline's results record.
VERSIONS = ("diffusers", "transformers")
_TAXONOMY = "TAXONOMY.md: diffusers models and pipelines are vision/diffusion"


def _claim(model: ModelRef, signal: str, evidence: str, model_class: str | None
           ) -> Classification:
    """A diffusion claim decided by ``signal``, with the fields :func:`claim` fills."""
    from hwaccel.kit.claims import SIGNAL_CONFIDENCE

    return Classification(
        model=model.spec, family=FAMILY, subfamily=SUBFAMILY, pipeline=NAME,
        model_type=None, model_class=model_class,
        confidence=SIGNAL_CONFIDENCE.get(signal, 0.0), signal=signal,
        reason=f"{evidence}; {_TAXONOMY}", tasks=(), workload=WORKLOAD)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the diffusion pipeline: the labels it takes and the models that represent it."""
    return PipelineInfo(name=NAME, description=DESCRIPTION, takes=TAKES,
                        example_models=EXAMPLE_MODELS, versions=VERSIONS)


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim diffusers folders, ``tiny:`` diffusers classes, class hints and diffusion names."""
    from hwaccel.kit.claims import SIGNAL_CONFIDENCE, claim

    found = claim(model, NAME, WORKLOAD, subfamily=SUBFAMILY)
    if found is not None or model.kind == "composite":
        return found
    from hwaccel_pipeline_diffusion.classes import installed, name_pattern

    classes = installed()
    if model.is_tiny and not model.model_type and model.architectures:
        name = model.architectures[0]
        kind = classes.kind_of(name)
        if kind:
            return _claim(model, model.signal,
                          f"tiny build of diffusers {classes.version} {kind} class {name}",
                          name)
        return None
    if model.config is not None:
        return None  # a config that is not diffusers' outranks class hints and names
    weaker_than_class = SIGNAL_CONFIDENCE.get(model.signal, 0.0) < SIGNAL_CONFIDENCE["class"]
    kind = classes.kind_of(model.model_class)
    if kind and weaker_than_class:
        return _claim(model, "class", f"model class {model.model_class} is a diffusers "
                                      f"{classes.version} {kind} class", model.model_class)
    # a name the core matched to a transformers model type (diffusion_gemma) is not diffusers
    family = name_pattern(model.spec) if model.kind == "hub" and not model.model_type else None
    if family and SIGNAL_CONFIDENCE.get(model.signal, 0.0) <= SIGNAL_CONFIDENCE["name"]:
        return _claim(model, "name", f"name {model.spec!r} follows {family} naming "
                                     f"({model.evidence})", model.model_class)
    return None


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the diffusion test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_diffusion.py.j2")
