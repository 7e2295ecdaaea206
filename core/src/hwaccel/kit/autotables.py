"""The installed transformers' auto-model tables, read at run time and cached on disk.

``transformers.models.auto.modeling_auto`` holds one ``MODEL_FOR_<TASK>_MAPPING_NAMES`` dict per
task, mapping a ``model_type`` to its class names. They are read from transformers' source
(:mod:`hwaccel.kit.autotables_source`, a fraction of a second) or, if the source has changed shape,
by importing it (seconds), and cached per transformers version in the hwaccel cache folder; a
new transformers release is read afresh, so new model types classify without a code change.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass

from hwaccel.errors import UsageError
from hwaccel.kit import jsoncache, paths

_FORMAT = 5


@dataclass(frozen=True)
class AutoTables:
    """Tasks per model type, known config types, class name to type, default expert counts."""

    transformers_version: str
    tasks_by_type: dict[str, tuple[str, ...]]
    config_types: tuple[str, ...]
    type_by_class: dict[str, str]
    experts_by_type: dict[str, int]

    def tasks(self, model_type: str) -> frozenset[str]:
        """Return the TASK names whose table lists ``model_type`` (empty if none)."""
        return frozenset(self.tasks_by_type.get(model_type, ()))


def transformers_version() -> str:
    """Return the installed transformers version, or raise a clear error when it is missing."""
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        raise UsageError("transformers is not installed: pip install transformers") from None


def _default_experts(model_types: list[str]) -> dict[str, int]:
    """Expert counts of the default configs of text model types that declare more than one."""
    from transformers import AutoConfig
    from transformers.utils import logging

    from hwaccel.kit.taxonomy import max_experts

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # default configs warn about their own token ids
    try:
        counts = {}
        for model_type in model_types:
            try:
                experts = max_experts(AutoConfig.for_model(model_type).to_dict())
            except Exception:  # noqa: BLE001 - a config that cannot be built has no experts
                continue
            if experts > 1:
                counts[model_type] = experts
        return counts
    finally:
        logging.set_verbosity(verbosity)


def _owner(class_name: str, model_types: list[str]) -> str:
    """The model type a class belongs to: the one its name starts with, else the first."""
    squashed = class_name.lower()
    for model_type in sorted(model_types, key=len, reverse=True):
        if squashed.startswith(model_type.replace("_", "").replace("-", "")):
            return model_type
    return model_types[0]


def _text_tasks() -> set[str]:
    """Tasks of TAXONOMY.md rules 6 and 7: model types with them may be mixtures of experts."""
    from hwaccel.kit.taxonomy import EMBEDDING_TASKS

    return {"CAUSAL_LM", "SEQ_TO_SEQ_CAUSAL_LM", *EMBEDDING_TASKS}


def read_by_import() -> dict:
    """Read the tables by importing transformers (seconds): the fallback and the oracle."""
    from transformers.models.auto import configuration_auto, modeling_auto

    text_tasks = _text_tasks()
    tasks_by_type: dict[str, list[str]] = {}
    types_by_class: dict[str, list[str]] = {}
    for attr in sorted(dir(modeling_auto)):
        if not (attr.startswith("MODEL_") and attr.endswith("_MAPPING_NAMES")):
            continue
        table = getattr(modeling_auto, attr)
        if not isinstance(table, dict):
            continue
        task = attr[len("MODEL_FOR_"):-len("_MAPPING_NAMES")] if attr.startswith(
            "MODEL_FOR_") else "BASE"
        for model_type, classes in table.items():
            tasks_by_type.setdefault(model_type, []).append(task)
            for name in classes if isinstance(classes, (list, tuple)) else [classes]:
                types_by_class.setdefault(name, []).append(model_type)
    return {
        "experts_by_type": _default_experts(
            sorted(t for t, tasks in tasks_by_type.items() if text_tasks & set(tasks))),
        "tasks_by_type": tasks_by_type, "types_by_class": types_by_class,
        "config_types": sorted(configuration_auto.CONFIG_MAPPING_NAMES),
    }


def _read_tables() -> dict:
    """Read the tables from transformers' source (fast), else by importing it."""
    from hwaccel.kit import autotables_source
    from hwaccel.kit.taxonomy import EXPERT_KEYS

    raw = autotables_source.read(EXPERT_KEYS, _text_tasks()) or read_by_import()
    return {
        "format": _FORMAT,
        "experts_by_type": raw["experts_by_type"],
        "tasks_by_type": {k: sorted(set(v)) for k, v in raw["tasks_by_type"].items()},
        "config_types": raw["config_types"],
        "type_by_class": {name: _owner(name, types)
                          for name, types in raw["types_by_class"].items()},
    }


@functools.cache
def load() -> AutoTables:
    """Return the auto tables of the installed transformers (from the disk cache if fresh)."""
    version = transformers_version()
    cache_file = paths.cache_dir() / f"autotables-transformers-{version}.json"
    data = jsoncache.read(cache_file)
    if isinstance(data, dict) and data.get("format") == _FORMAT:
        try:
            return _from_data(version, data)
        except (KeyError, TypeError, AttributeError, ValueError):
            pass  # a damaged cache file is rebuilt below
    data = _read_tables()
    jsoncache.write(cache_file, data)
    return _from_data(version, data)


def _from_data(version: str, data: dict) -> AutoTables:
    return AutoTables(
        transformers_version=version,
        tasks_by_type={k: tuple(v) for k, v in data["tasks_by_type"].items()},
        config_types=tuple(data["config_types"]),
        type_by_class=dict(data["type_by_class"]),
        experts_by_type=dict(data["experts_by_type"]),
    )
