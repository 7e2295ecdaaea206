"""The configs of a model: its config and every sub-config inside it."""

from __future__ import annotations

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
