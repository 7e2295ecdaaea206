"""The time-series workload: a forecaster given a seeded history, asked for the next steps.

The model class is the model type's ``<Base>ForPrediction`` (``PatchTSTForPrediction`` for
``PatchTSTModel``), or the class a real checkpoint's config names. Inputs are built from the
config: ``past_values`` of ``context_length`` steps of ``num_input_channels`` channels, each
channel a sine wave of its own period plus seeded noise (a history with a pattern to
forecast), and the mask of observed values (all observed). ``seq_len`` does not apply: the
model reads the context length it was built for. The timed call returns the forecast,
``prediction_outputs`` of shape (batch, prediction_length, num_input_channels).
"""

from __future__ import annotations

import inspect
import math
from functools import cached_property
from typing import Any

from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import TransformersWorkload

PREDICTION_SUFFIX = "ForPrediction"
MASK_ARGUMENTS = ("past_observed_mask", "observed_mask")
FORECAST = "prediction_outputs"
NOISE = 0.1  # standard deviation of the noise on each unit-amplitude sine wave


class TimeSeriesWorkload(TransformersWorkload):
    """Workload of the ``timeseries`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    @cached_property
    def model_class(self) -> Any:
        """The checkpoint's own ``*ForPrediction`` class, else the model type's."""
        import transformers
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

        own = [name for name in self.ref.architectures if name.endswith(PREDICTION_SUFFIX)]
        base = MODEL_MAPPING_NAMES.get(self.ref.model_type or "", "")
        name = own[0] if own else base.removesuffix("Model") + PREDICTION_SUFFIX
        return getattr(transformers, name)

    def prepare(self) -> None:
        """Import torch and the model class and read the config (not part of load time)."""
        import torch  # noqa: F401

        _ = self.model_class, self.config

    @property
    def context_length(self) -> int:
        """Past steps the model reads (the config's ``context_length``)."""
        return int(self.config.context_length)

    @property
    def channels(self) -> int:
        """Channels of the series (the config's ``num_input_channels``)."""
        return int(self.config.num_input_channels)

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """``batch_size`` seeded histories (see the module docstring) and their observed
        mask; ``seq_len`` does not apply."""
        import torch

        generator = torch.Generator().manual_seed(TINY_SEED)
        steps = torch.arange(self.context_length, dtype=torch.float32)
        periods = torch.arange(self.channels, dtype=torch.float32) + 4.0
        waves = torch.sin(2 * math.pi * steps[:, None] / periods[None, :])
        noise = torch.randn(batch_size, self.context_length, self.channels,
                            generator=generator)
        phase = torch.randn(batch_size, 1, 1, generator=generator)
        values = waves[None] + phase + NOISE * noise
        inputs = {"past_values": values}
        accepted = inspect.signature(self.model_class.forward).parameters
        mask = next((name for name in MASK_ARGUMENTS if name in accepted), None)
        if mask is not None:
            inputs[mask] = torch.ones_like(values)
        return inputs

    def take(self, inputs: dict[str, Any], count: int) -> dict[str, Any]:
        """The first ``count`` histories of a batch of inputs."""
        return {name: value[:count] for name, value in inputs.items()}

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forecast; returns the output tensors by name (``prediction_outputs``, and the
        scaling's ``loc`` and ``scale`` where the model returns them)."""
        import torch

        with torch.inference_mode():
            outputs = model(**inputs)
        return {name: value for name, value in outputs.items() if torch.is_tensor(value)}

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The forecast: (batch, the config's ``prediction_length``, channels)."""
        batch = int(inputs["past_values"].shape[0])
        return {FORECAST: (batch, int(self.config.prediction_length), self.channels)}
