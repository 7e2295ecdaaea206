"""Workloads: the pipeline code a benchmark and a generated test run.

A pipeline plugin names its workload class in ``Classification.workload`` as
``"package.module:Class"``; the class is imported only here, inside the job process or the
generated test, so that loading plugins never imports torch.
"""

from __future__ import annotations

import importlib
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel.types import Classification, ModelRef


class Workload(Protocol):
    """What a pipeline's workload class provides (constructed as ``Class(ref, classification)``)."""

    def prepare(self) -> None:
        """Import libraries and read configs: the set-up that is not model load time."""

    def load_model(self) -> Any:
        """Return the model on the CPU in fp32 eval mode (tiny models from a fixed seed)."""

    def skeleton(self) -> Any:
        """Return the model :meth:`load_model` builds, on the meta device: its modules,
        parameter shapes and dtypes from the config, with no weights allocated or read."""

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Return deterministic example inputs for one call, on the CPU."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run one inference call (the timed operation) and return its named tensor outputs."""

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Return the output shapes the model's config implies for ``inputs``."""

    def output_shapes(self, outputs: dict[str, Any]) -> dict[str, list[int]]:
        """Return the shape of each named output."""

    # Optional: ``embeddings(outputs, inputs)`` returns one vector per batch row (a sentence
    # embedding) or None; benchmarks then record its cosine similarity to the CPU reference.


INPUT_SOURCES = ("processor", "processor-class", "processor-settings", "synthetic")
"""Where a workload's inputs came from: the model folder's own preprocessor, the model
type's preprocessor classes with their default settings, hwaccel at the sizes such a class
declares (a class this machine cannot run: torchvision's only), or hwaccel (seeded values
shaped from the config). A CPU reference that fails on inputs shaped by a processor is the
model's failure; on synthetic ones it may be hwaccel's (see :mod:`hwaccel.kit.failures`)."""


class BaseWorkload:
    """What every workload shares: its reference and classification, and output shapes.

    ``input_source`` (one of :data:`INPUT_SOURCES`) says where :meth:`make_inputs` took its
    inputs from; a workload sets it when it builds them from a processor.
    """

    input_source = "synthetic"

    def __init__(self, ref: ModelRef, classification: Classification):
        self.ref = ref
        self.classification = classification

    def output_shapes(self, outputs: dict[str, Any]) -> dict[str, list[int]]:
        """The shape of each named output."""
        return {name: list(value.shape) for name, value in outputs.items()}


class TransformersWorkload(BaseWorkload):
    """A workload whose model is one transformers class built from the model's config.

    Subclasses provide ``model_class`` (usually a cached property). Real checkpoints load from
    their folder in fp32 with nothing fetched remotely and no remote code; ``tiny:`` models are
    built from their tiny config with weights from :data:`~hwaccel.kit.tiny.TINY_SEED`, so every
    build of the same tiny model is identical.
    """

    model_class: Any

    @cached_property
    def config(self) -> Any:
        """The model's transformers config.

        For ``tiny:`` references, the smallest :meth:`tiny_config` that builds and runs one
        forward call of this workload (:func:`hwaccel.kit.tiny_search.find_tiny_config`).
        """
        if self.ref.is_tiny and self.ref.model_type:
            from hwaccel.kit.tiny_search import find_tiny_config

            return find_tiny_config(self)
        return self.ref.load_config()

    @cached_property
    def forward_parameters(self) -> frozenset[str]:
        """The argument names the model class's ``forward`` accepts.

        :raises HwaccelError: for a class that defines no ``forward`` (Bark's, Qwen-Omni's:
            they only generate, through their sub-models), since a workload times one
            forward call.
        """
        import inspect

        import torch

        if self.model_class.forward is torch.nn.Module.forward:
            raise HwaccelError(f"{self.model_class.__name__} defines no forward (it only "
                               "generates, through its sub-models): no single call to time")
        return frozenset(inspect.signature(self.model_class.forward).parameters)

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """One candidate tiny config of the model type: every size shrunk except the dotted
        key paths in ``keep``, which keep the type's defaults
        (:func:`hwaccel.kit.tiny.tiny_config`).

        Pipelines override this to add the fixes their architectures need; the search tries
        candidates from the most shrunk to the least and keeps the first that runs.
        """
        from hwaccel.kit.tiny import tiny_config

        return tiny_config(self.ref.model_type or "", keep)

    def architecture_class(self) -> Any | None:
        """The first installed transformers class the config's ``architectures`` names."""
        import transformers

        for name in self.ref.architectures:
            cls = getattr(transformers, name, None)
            if cls is not None:
                return cls
        return None

    def output_fields(self) -> frozenset[str] | None:
        """The fields of the output class the model class's ``forward`` declares it returns
        (``last_hidden_state``, ``logits``, ...); ``None`` when its annotation names none."""
        import dataclasses
        import typing

        try:
            returned = typing.get_type_hints(self.model_class.forward).get("return")
        except Exception:  # noqa: BLE001 - an annotation that does not resolve says nothing
            return None
        fields = {f.name for option in (typing.get_args(returned) or (returned,))
                  if dataclasses.is_dataclass(option) for f in dataclasses.fields(option)}
        return frozenset(fields) or None

    def folder_preprocessor(self, auto_class: str, marker_files: tuple[str, ...]) -> Any | None:
        """The model folder's preprocessor, or ``None`` when the folder ships none.

        :param auto_class: the transformers auto class that loads it (``AutoTokenizer``,
            ``AutoImageProcessor``, ``AutoFeatureExtractor``, ``AutoProcessor``).
        :param marker_files: the files whose presence in the folder means it ships one.
        """
        if self.ref.path is None:
            return None
        folder = Path(self.ref.path)
        if not any((folder / name).is_file() for name in marker_files):
            return None
        import transformers

        return getattr(transformers, auto_class).from_pretrained(
            folder, local_files_only=True, trust_remote_code=False)

    def skeleton(self) -> Any:
        """The model class built from the config on the meta device (nothing allocated)."""
        import torch

        with torch.device("meta"):
            return self.model_class(self.config)

    def load_model(self) -> Any:
        """Return the model on the CPU, fp32, in eval mode."""
        import torch

        torch.manual_seed(TINY_SEED)
        if self.ref.is_tiny:
            model = self.model_class(self.config)
        else:
            from hwaccel.errors import ModelReferenceError
            from hwaccel.models.resolve import not_cached_message

            if self.ref.path is None:
                raise ModelReferenceError(not_cached_message(self.ref.spec))
            model = self.model_class.from_pretrained(
                self.ref.path, local_files_only=True, trust_remote_code=False,
                dtype=torch.float32)
        return model.float().eval()


def load_workload(model: str, classification: Classification | None = None) -> Workload:
    """Return the workload for ``model``, classifying it first when no classification is given
    (the application resolves and classifies the reference: imported here, on use)."""
    from hwaccel.models.resolve import resolve_model

    ref = resolve_model(model)
    if classification is None:
        from hwaccel.models.classify import classify_ref
        from hwaccel.plugins import get_plugins

        classification = classify_ref(ref, get_plugins()).classification
    return workload_for(ref, classification)


def workload_for(ref: ModelRef, classification: Classification) -> Workload:
    """Return the workload its classification names for a resolved reference."""
    model = ref.spec
    if not classification.workload:
        raise HwaccelError(f"no workload for {model!r}: {classification.reason}")
    module_name, _, class_name = classification.workload.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise HwaccelError(
            f"workload {classification.workload!r} cannot be loaded: {exc}") from None
    return cls(ref, classification)


def feature_tensors(output: Any) -> list[Any]:
    """The feature tensors in what a model's ``get_*_features`` method returned (images,
    video, audio): its ``pooler_output`` (the projected features) when set, else its
    ``last_hidden_state``, else the tensor or the tensors of the list itself."""
    import torch

    for key in ("pooler_output", "last_hidden_state"):
        value = getattr(output, key, None)
        if value is not None:
            output = value
            break
    if torch.is_tensor(output):
        return [output]
    if isinstance(output, (list, tuple)):
        return [tensor for item in output for tensor in feature_tensors(item)]
    raise HwaccelError(f"get_*_features returned a {type(output).__name__}, not features")
