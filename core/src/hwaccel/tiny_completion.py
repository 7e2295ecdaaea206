"""Values a type's default config lacks but its model reads, taken from the config itself.

Some default configs of the installed transformers leave out a value their modeling code
reads (``DbrxAttentionConfig`` has no ``rope_theta``: real checkpoints set it), so not even the
default builds. When building fails with ``'<SomeConfig>' object has no attribute '<name>'``,
:func:`completion_for` looks for the same quantity elsewhere in the config, in this order:

1. the same key in another (sub-)config of the tree (a decoder's ``num_key_value_heads``
   from its encoder's);
2. an entry of that name inside a mapping-valued key of the config or of a config above it
   (``rope_theta`` inside ``rope_parameters``);
3. a key of the same config whose name ends with the most words of ``<name>`` (a talker's
   ``shared_expert_intermediate_size`` from its ``moe_intermediate_size``).

A completion is written into ``keep`` as ``<set TARGET from DONOR>`` (dotted paths; ``/`` for
a mapping's entry), so the tiny-config cache remembers it, and :func:`apply_completions` sets
it on the built config.
"""

from __future__ import annotations

import re
from typing import Any

_MISSING = re.compile(r"'(\w+Config)' object has no attribute '(\w+)'")
_MARKER = re.compile(r"^<set (\S+) from (\S+)>$")


def _configs(config: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, config object) of ``config`` and every sub-config in it, outermost first."""
    from transformers import PretrainedConfig

    found = [(prefix, config)]
    for key, value in vars(config).items():
        if isinstance(value, PretrainedConfig):
            found.extend(_configs(value, f"{prefix}{key}."))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _suffix_words(a: str, b: str) -> int:
    """How many trailing ``_``-separated words two names share."""
    count = 0
    for x, y in zip(reversed(a.split("_")), reversed(b.split("_")), strict=False):
        if x != y:
            break
        count += 1
    return count


def completion_for(error: BaseException, default: Any) -> str | None:
    """The ``keep`` marker that supplies the attribute ``error`` says a config lacks, or
    ``None`` when the error is not such, or nothing in ``default`` (the type's default
    config object) holds the quantity."""
    found = _MISSING.search(str(error))
    if not isinstance(error, AttributeError) or found is None:
        return None
    class_name, name = found.groups()
    configs = [(path, vars(config)) for path, config in _configs(default)]
    targets = [path for path, config in _configs(default) if type(config).__name__ == class_name]
    for path in targets:
        donor = _donor(name, path, dict(configs)[path], configs)
        if donor is not None:
            return f"<set {path}{name} from {donor}>"
    return None


def _donor(name: str, path: str, values: dict[str, Any],
           configs: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The path of the value that stands for ``name`` missing at ``path`` (see the module)."""
    for other_path, other in configs:  # 1. the same key in another config
        if other_path != path and _number(other.get(name)):
            return f"{other_path}{name}"
    for above_path, above in [(p, v) for p, v in configs if path.startswith(p)][::-1]:
        for key, value in above.items():  # 2. an entry of a mapping-valued key
            if isinstance(value, dict) and _number(value.get(name)):
                return f"{above_path}{key}/{name}"
    scored = [(_suffix_words(name, key), key) for key, value in values.items()
              if _number(value) and not isinstance(value, float)]
    best = max(scored, default=(0, ""))
    return f"{path}{best[1]}" if best[0] else None  # 3. the key ending in most of its words


def _resolve(config: Any, path: str) -> tuple[Any, str]:
    """The (sub-)config object a dotted path's last key belongs to, and that key."""
    *parents, key = path.split(".")
    for parent in parents:
        config = getattr(config, parent)
    return config, key


def apply_completions(config: Any, keep: frozenset[str]) -> None:
    """Set on ``config`` every ``<set TARGET from DONOR>`` completion ``keep`` names."""
    for marker in keep:
        found = _MARKER.match(marker)
        if found is None:
            continue
        target, donor = found.groups()
        owner, key = _resolve(config, donor.split("/")[0])
        value = getattr(owner, key)
        if "/" in donor:
            value = value[donor.split("/", 1)[1]]
        owner, key = _resolve(config, target)
        setattr(owner, key, value)
