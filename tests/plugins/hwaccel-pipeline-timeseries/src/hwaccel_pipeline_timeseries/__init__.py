"""hwaccel pipeline ``timeseries``: time-series forecasters (PatchTST, PatchTSMixer).

A pipeline outside hwaccel's own nine, written the way any third party would write one: it
imports only hwaccel's plugin API and :mod:`hwaccel.kit`, and hwaccel's core names it
nowhere. TAXONOMY.md places no time-series model (their auto-model tasks meet none of its
rows: family ``unknown``, no pipeline), so this pipeline declares what it takes itself
(:data:`TAKES`: the model types it can feed), and the core hands it those models. It keeps
the TAXONOMY.md family and gives the subfamily ``forecaster``; the workload
(:mod:`hwaccel_pipeline_timeseries.workload`) forecasts ``prediction_length`` steps of every
channel from ``context_length`` past steps. Importing this module imports neither torch
nor transformers.
"""

from __future__ import annotations

from hwaccel import Classification, LabelRule, ModelRef, PipelineInfo, TemplatePart, hookimpl

NAME = "timeseries"
WORKLOAD = "hwaccel_pipeline_timeseries.workload:TimeSeriesWorkload"
SUBFAMILY = "forecaster"
ARCHITECTURE = "patch-based forecaster"
# transformers model types whose ``<Type>ForPrediction`` class forecasts from ``past_values``
# of shape (batch, context_length, num_input_channels).
MODEL_TYPES = ("patchtst", "patchtsmixer")
TAKES = (LabelRule(model_types=MODEL_TYPES),)
EXAMPLE_MODELS = ("tiny:patchtst",)


@hookimpl
def hwaccel_pipeline_info() -> PipelineInfo:
    """Declare the time-series pipeline: the model types it takes, its example model."""
    return PipelineInfo(name=NAME, description="Time-series forecasters (PatchTST, PatchTSMixer).",
                        takes=TAKES, example_models=EXAMPLE_MODELS, versions=("transformers",))


@hookimpl
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim the forecasters the core handed to this pipeline."""
    from hwaccel.kit.claims import claim

    return claim(model, NAME, WORKLOAD, subfamily=SUBFAMILY, architecture=ARCHITECTURE,
                 reason=f"a time-series forecaster ({model.model_type})")


@hookimpl
def hwaccel_template(pipeline: str) -> TemplatePart | None:
    """Provide the time-series test-module template."""
    if pipeline != NAME:
        return None
    from hwaccel.kit.pipeline_parts import template_part

    return template_part(NAME, __package__, "test_timeseries.py.j2")
