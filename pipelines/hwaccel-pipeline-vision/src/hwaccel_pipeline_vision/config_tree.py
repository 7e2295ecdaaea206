"""The configs of a model: its config and every sub-config inside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def all_configs(config: Any) -> list[Any]:
    """``config`` and all its sub-configs (``vision_config``, ``backbone_config`` ...),
    outermost first (breadth first)."""
    from transformers import PretrainedConfig

    found, queue = [], [config]
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(value for value in vars(current).values()
                     if isinstance(value, PretrainedConfig))
    return found


def leaf_overrides(values: dict[str, Any], keep: frozenset[str],
                   change: Callable[[str, Any], Any], prefix: str = "") -> dict[str, Any]:
    """Overrides of a config's values tree (sub-configs as dicts with a ``model_type``): for
    every value not kept (``keep`` holds dotted paths), ``change(key, value)`` gives its new
    value, or None to leave it; a sub-config with changes is given whole, changes merged."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = prefix + key
        if path in keep:
            continue
        if isinstance(value, dict) and isinstance(value.get("model_type"), str):
            inner = leaf_overrides(value, keep, change, path + ".")
            if inner:
                out[key] = {**value, **inner}
        elif (new := change(key, value)) is not None:
            out[key] = new
    return out
