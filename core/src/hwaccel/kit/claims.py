"""Claims: how a pipeline plugin turns the core's evidence about a model into its claim.

A pipeline's ``hwaccel_classify`` receives a resolved :class:`~hwaccel.ModelRef` whose
``label`` holds the TAXONOMY.md labels, with ``label.pipeline`` naming the installed pipeline
that takes the model (the core decides it from every pipeline's ``hwaccel_pipeline_info``),
and whose ``signal`` says which evidence decided them; :func:`claim` builds the
:class:`~hwaccel.Classification` a pipeline returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwaccel.kit import autotables
from hwaccel.kit.taxonomy import TEXT_ARCHITECTURES
from hwaccel.types import Classification

if TYPE_CHECKING:
    from hwaccel.types import ModelRef

# TAXONOMY.md's order of signals, strongest first: config, local folder, cache, hub, an
# explicit class name, explicit tasks, the name alone.
SIGNAL_CONFIDENCE = {"config": 1.0, "local": 1.0, "hf-cache": 1.0, "class": 0.9,
                     "task": 0.7, "name": 0.5, "none": 0.0}


def claim(model: ModelRef, pipeline: str, workload: str, *, subfamily: str | None = None,
          architecture: str | None = None, confidence: float | None = None,
          reason: str | None = None) -> Classification | None:
    """Build a pipeline plugin's claim on a model whose reference label names ``pipeline``.

    The helper pipeline plugins call from ``hwaccel_classify``: it returns ``None`` unless the
    core's label (``model.label``) names ``pipeline`` as the one that takes the model (see
    :class:`~hwaccel.types.PipelineInfo`), and otherwise a
    :class:`Classification` with the label's family, the given (or the label's) subfamily,
    the confidence of the deciding signal, the auto-model tasks and the workload path. The
    architecture defaults to the text architecture of a text subfamily (``decoder-only`` for
    ``causal_lm``).

    :param confidence: overrides the signal's confidence (for claims that go beyond the
        reference label, which callers then make themselves).
    :param reason: replaces the label's rule in the reason text.
    """
    label = model.label
    if label is None or label.pipeline != pipeline:
        return None
    subfamily = subfamily or label.subfamily
    return Classification(
        model=model.spec, family=label.family, subfamily=subfamily, pipeline=pipeline,
        architecture=architecture or TEXT_ARCHITECTURES.get(subfamily or ""),
        model_type=model.model_type,
        model_class=model.model_class or next(iter(model.architectures), None),
        confidence=SIGNAL_CONFIDENCE.get(model.signal, 0.0) if confidence is None
        else confidence,
        signal=model.signal, reason=f"{model.evidence}; {reason or label.rule}".lstrip("; "),
        tasks=tuple(sorted(autotables.load().tasks(model.model_type or ""))),
        workload=workload)
