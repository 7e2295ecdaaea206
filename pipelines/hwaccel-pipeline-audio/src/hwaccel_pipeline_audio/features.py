"""The feature-extractor class of an audio model type, built with its sizes from the config.

transformers names a feature-extractor class per model type
(``FEATURE_EXTRACTOR_MAPPING_NAMES``); a composite type that names none (an encoder-decoder
built from two other types) uses the class of its sub-configs' types. The class must give
the model's main input (``input_features`` or ``input_values``); when none of those does
(transformers maps ``wav2vec2-bert`` to the raw-sample ``Wav2Vec2FeatureExtractor``), the
class the config's documentation names as the source of its input is used. Its defaults are
then aligned with the config: the number of mel bins and the sampling rate.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Iterator
from typing import Any

from hwaccel_pipeline_audio.config_values import find_int, sub_configs

SAMPLING_RATE_KEYS = ("sampling_rate", "sample_rate")
_DOCUMENTED = re.compile(r"\b([A-Z]\w*FeatureExtractor)\b")


def feature_extractor_classes(config: Any) -> Iterator[type]:
    """The feature-extractor classes transformers names for the config's model type, then
    for its sub-configs' types (depth first)."""
    from transformers.models.auto.feature_extraction_auto import (
        FEATURE_EXTRACTOR_MAPPING_NAMES,
        feature_extractor_class_from_name,
    )

    name = FEATURE_EXTRACTOR_MAPPING_NAMES.get(getattr(config, "model_type", ""))
    cls = feature_extractor_class_from_name(name) if name else None
    if cls is not None:
        yield cls
    for sub in sub_configs(config):
        yield from feature_extractor_classes(sub)


def documented_classes(config: Any) -> Iterator[type]:
    """The feature-extractor classes the config class's documentation names (the input a
    model takes is often documented as "the output of [`XFeatureExtractor`]")."""
    from transformers.feature_extraction_utils import FeatureExtractionMixin
    from transformers.models.auto.feature_extraction_auto import (
        feature_extractor_class_from_name,
    )

    for name in dict.fromkeys(_DOCUMENTED.findall(type(config).__doc__ or "")):
        cls = feature_extractor_class_from_name(name)
        if isinstance(cls, type) and issubclass(cls, FeatureExtractionMixin):
            yield cls


def gives(cls: type, main_input: str) -> bool:
    """True when the feature-extractor class returns ``main_input`` first."""
    names = list(getattr(cls, "model_input_names", []) or [])
    return bool(names) and names[0] == main_input


def sized_options(cls: type, config: Any) -> dict[str, int]:
    """The constructor options of ``cls`` that the config fixes: mel bins, sampling rate.

    ``feature_size`` counts mel bins only where it is not the audio's channel count (a default
    above 1) and does not stand beside a ``num_mel_bins`` with another default (AST's
    ``feature_size`` of 1 beside 128 mel bins).
    """
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}
    options: dict[str, int] = {}
    mel_bins = find_int(config, "num_mel_bins", "n_mels")
    if mel_bins is not None:
        for option in ("num_mel_bins", "n_mels"):
            if option in defaults:
                options[option] = mel_bins
        size = defaults.get("feature_size")
        own_mels = defaults.get("num_mel_bins", defaults.get("n_mels", size))
        if isinstance(size, int) and size > 1 and own_mels == size:
            options["feature_size"] = mel_bins
    rate = find_int(config, *SAMPLING_RATE_KEYS)
    if rate is not None and rate > 0 and "sampling_rate" in defaults:
        options["sampling_rate"] = rate
    return options


def default_feature_extractor(config: Any, main_input: str) -> Any | None:
    """The first feature extractor of the type's classes (see the module) that gives
    ``main_input``, built with the config's sizes; ``None`` when transformers names none."""
    candidates = itertools.chain(feature_extractor_classes(config), documented_classes(config))
    for cls in candidates:
        if gives(cls, main_input):
            return cls(**sized_options(cls, config))
    return None
