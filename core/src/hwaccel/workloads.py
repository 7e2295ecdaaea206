"""Workloads: the pipeline code a benchmark and a generated test run.

A pipeline plugin names its workload class in ``Classification.workload`` as
``"package.module:Class"``; the class is imported only here, inside the job process or the
generated test, so that loading plugins never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from hwaccel.errors import HwaccelError
from hwaccel.models import resolve_model
from hwaccel.types import Classification


class Workload(Protocol):
    """What a pipeline's workload class provides (constructed as ``Class(ref, classification)``)."""

    def prepare(self) -> None:
        """Import libraries and read configs: the set-up that is not model load time."""

    def load_model(self) -> Any:
        """Return the model on the CPU in fp32 eval mode (tiny models from a fixed seed)."""

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Return deterministic example inputs for one call, on the CPU."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run one inference call (the timed operation) and return its named tensor outputs."""

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Return the output shapes the model's config implies for ``inputs``."""

    def output_shapes(self, outputs: dict[str, Any]) -> dict[str, list[int]]:
        """Return the shape of each named output."""


def load_workload(model: str, classification: Classification | None = None) -> Workload:
    """Return the workload for ``model``, classifying it first when no classification is given."""
    ref = resolve_model(model)
    if classification is None:
        from hwaccel.classify import classify_ref
        from hwaccel.plugins import get_plugins

        classification = classify_ref(ref, get_plugins()).classification
    if not classification.workload:
        raise HwaccelError(f"no workload for {model!r}: {classification.reason}")
    module_name, _, class_name = classification.workload.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise HwaccelError(
            f"workload {classification.workload!r} cannot be loaded: {exc}") from None
    return cls(ref, classification)
