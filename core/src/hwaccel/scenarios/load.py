"""Read a scenario file and check every key, naming the file, the line and the key.

The YAML is read with the safe loader from composed nodes (each carries its line), after a
pass over the parser's events refuses tags (``!!python/object``, ``!custom``) and anchors
and aliases (no expansion bomb can reach the composer); the file is at most
:data:`MAX_BYTES`. Every error is a :class:`UsageError` reading
``FILE:LINE: KEY: what is wrong``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel.errors import UsageError
from hwaccel.scenarios.schema import (
    BY_NAME,
    DESCRIPTIVE,
    LISTS,
    SPELLINGS,
    Scenario,
    Setting,
    describe,
)

MAX_BYTES = 1 << 20
"""The largest scenario file read (1 MiB): a scenario is a page of settings."""


def load(path: str | Path) -> Scenario:
    """Read and check the scenario file at ``path``.

    :raises UsageError: a missing or unreadable file, one over :data:`MAX_BYTES`, text that
        is not YAML or not a mapping, or any key that is unknown or has a bad value.
    """
    file = Path(path)
    try:
        if file.is_dir():
            raise UsageError(f"{path}: is a folder, not a scenario file")
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise UsageError(f"{path}: {size:,} bytes; a scenario file is at most "
                             f"{MAX_BYTES:,} bytes")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such scenario file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, so not a scenario file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return parse(text, str(path))


def parse(text: str, path: str) -> Scenario:
    """Check the scenario ``text`` read from ``path`` (named in errors)."""
    import yaml

    try:
        _refuse_tags_and_aliases(text, path)
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise UsageError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: "
                         f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}:1: not valid YAML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}:1: not valid YAML: nested too deeply") from None
    if root is None:
        raise UsageError(f"{path}:1: the file is empty; a scenario is a mapping of keys "
                         "(models, backends, batch_sizes, ...)")
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:{root.start_mark.line + 1}: a scenario is a mapping of keys "
                         f"(models, backends, batch_sizes, ...), not {describe(data)}")
    values: dict[str, Any] = {}
    keys: dict[str, tuple[str, int]] = {}
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        key = _key_text(key_node)
        if key not in SPELLINGS:
            raise UsageError(f"{path}:{line}: {key}: unknown key{_suggestion(key)}")
        name = SPELLINGS[key]
        if name in keys:
            first, first_line = keys[name]
            same = "given twice" if first == key else f"sets the same setting as {first}"
            raise UsageError(f"{path}:{line}: {key}: {same} (line {first_line}); give one")
        keys[name] = (key, line)
        values[name] = _checked(data[key], value_node, _Where(path, key, line), name)
    return Scenario(path=path, text=text, values=values, keys=keys)


def _key_text(node: Any) -> str:
    """The text of a mapping key node (a key that is not plain text is named as YAML
    wrote it)."""
    return node.value if isinstance(node.value, str) else f"<{node.tag}>"


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, list(SPELLINGS), n=1)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known keys: {', '.join(SPELLINGS)})"


def _refuse_tags_and_aliases(text: str, path: str) -> None:
    """Raise at the first explicit tag, anchor or alias in ``text``."""
    import yaml

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise UsageError(f"{path}:{line}: YAML anchors and aliases are not allowed in a "
                             "scenario")
        if getattr(event, "tag", None) is not None:
            raise UsageError(f"{path}:{line}: YAML tags ({event.tag}) are not allowed in a "
                             "scenario")


def _checked(value: Any, node: Any, where: _Where, name: str) -> Any:
    """The checked value of key ``name`` (a tuple for lists and sweeps)."""
    if name in LISTS:
        return tuple(_items(value, node, where, lambda v: None if isinstance(v, str)
                            and v.strip() else f"must be a name, not {describe(v)}"))
    setting: Setting = BY_NAME.get(name) or DESCRIPTIVE[name]
    if setting.sweep:
        return tuple(_items(value, node, where, setting.problem))
    if isinstance(value, (list, dict)):
        raise where.error(f"takes one value, not {describe(value)}")
    problem = setting.problem(value)
    if problem:
        raise where.error(problem)
    return value


def _items(value: Any, node: Any, where: _Where, problem_of: Any) -> list[Any]:
    """One value or a non-empty list of values, each checked by ``problem_of``; an item's
    error names its own line."""
    if isinstance(value, dict):
        raise where.error("takes one value or a list, not a mapping")
    if not isinstance(value, list):
        problem = problem_of(value)
        if problem:
            raise where.error(problem)
        return [value]
    if not value:
        raise where.error("an empty list sweeps nothing; give at least one value")
    for index, (item, item_node) in enumerate(zip(value, node.value, strict=True), start=1):
        problem = problem_of(item)
        if problem:
            raise where.error(f"item {index} {problem}", item_node.start_mark.line + 1)
    return value


@dataclass(frozen=True)
class _Where:
    """A key of the file being checked: its path, the key as spelled and its line."""

    path: str
    key: str
    line: int

    def error(self, message: str, line: int | None = None) -> UsageError:
        """``FILE:LINE: KEY: message`` (``line``: an item's own line)."""
        return UsageError(f"{self.path}:{line or self.line}: {self.key}: {message}")
