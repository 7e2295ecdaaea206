"""From a scenario (and the command line over it) to the sweep: one point per combination.

Precedence, per setting: a value given on the command line, else the scenario file's value
(one, or a list that sweeps it), else the built-in default. The sweep is the product of
every setting's values, in the order of :data:`hwaccel.scenarios.schema.SETTINGS` (the last
varies fastest); each point is one group of benchmark jobs over models x backends.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from hwaccel.scenarios.schema import SETTINGS, Scenario


def axes(scenario: Scenario | None, given: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The values of every sweep setting: ``given[name]`` (the command line; ``None`` when
    not given) wins over the scenario's, which win over the default."""
    values = scenario.values if scenario else {}
    return {s.name: (given[s.name],) if given.get(s.name) is not None
            else values.get(s.name, (s.default,))
            for s in SETTINGS if s.sweep}


def option(name: str, scenario: Scenario | None, given: Any, default: Any) -> Any:
    """A one-value setting (``timeout``, ``workers`` ...): ``given`` on the command line,
    else the scenario's, else ``default``."""
    if given is not None:
        return given
    if scenario and name in scenario.values:
        return scenario.values[name]
    return default


def sweep(values: Mapping[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination of ``values`` (setting -> its values), as setting -> value."""
    names = list(values)
    return [dict(zip(names, combination, strict=True))
            for combination in itertools.product(*values.values())]


def varied(points: list[dict[str, Any]]) -> list[str]:
    """The settings that differ between ``points`` (what names a point in a sweep)."""
    return [name for name in (points[0] if points else {})
            if len({repr(p[name]) for p in points}) > 1]
