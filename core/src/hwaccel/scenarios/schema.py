"""What a scenario file may say: its keys, their types, ranges and defaults.

The measurement settings here are the same ones ``hwaccel benchmark`` and ``hwaccel matrix``
take as options (:mod:`hwaccel.cli.measure_options` reads their defaults and checks from
:data:`SETTINGS`), so a file and a command line are checked by the same rules. A setting
marked ``sweep`` takes one value or a list; every list is an axis of the sweep
(:mod:`hwaccel.scenarios.expand`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hwaccel.errors import UsageError
from hwaccel.types import NATIVE_PRECISION, QUANTIZED_PRECISIONS

PRECISIONS = ("fp32", "fp16", "bf16", NATIVE_PRECISION, *QUANTIZED_PRECISIONS)
"""What a measurement may ask for: float formats any backend may fall back from, the
device's own default (``native``), and the quantized ones, which only a device that
declares them among its capabilities runs."""

AUTO = "auto"
"""The batch size chosen by the memory estimate (``hwaccel benchmark`` only)."""

KINDS = ("benchmark", "matrix")
"""What a scenario runs as: benchmark jobs (the default) or a matrix."""


@dataclass(frozen=True)
class Setting:
    """One key: its type (``int``, ``number``, ``choice`` or ``string``), its default, its
    range (``minimum``, or ``positive``), whether a list of values sweeps it, whether it
    takes ``auto``, the commands it applies to, the unit named in errors and the other
    spellings a file may use for it."""

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    sweep: bool = True
    auto: bool = False
    commands: tuple[str, ...] = KINDS
    unit: str = ""
    aliases: tuple[str, ...] = field(default=())

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or ``None`` when it is valid."""
        if self.auto and value == AUTO:
            return None
        if self.kind == "choice":
            if value in self.choices:
                return None
            return f"must be one of {', '.join(self.choices)}, not {describe(value)}"
        if self.kind == "string":
            return None if isinstance(value, str) and value.strip() else \
                f"must be non-empty text, not {describe(value)}"
        whole = self.kind == "int"
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            wanted = "a whole number" if whole else f"a number{self.unit}"
            return f"must be {wanted}{' or auto' if self.auto else ''}, not {describe(value)}"
        if self.positive and not (math.isfinite(value) and value > 0):
            return f"must be a positive number{self.unit}, not {value:g}"
        if not math.isfinite(value):
            return f"must be a finite number{self.unit}, not {value}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}, not {value:g}"
        return None


SECONDS = " of seconds"
SETTINGS = (
    Setting("batch_size", "int", 1, minimum=1, auto=True, aliases=("batch_sizes",)),
    Setting("seq_len", "int", 32, minimum=1,
            aliases=("seq_lens", "prompt_len", "prompt_lens")),
    Setting("new_tokens", "int", 0, minimum=0),
    Setting("kv_cache", "choice", "dynamic", choices=("dynamic", "static")),
    Setting("precision", "choice", "fp32", choices=PRECISIONS, aliases=("precisions",)),
    Setting("warmup", "int", 3, minimum=0),
    Setting("iterations", "int", 20, minimum=1),
    Setting("min_seconds", "number", 1.0, minimum=0, unit=SECONDS),
    Setting("max_seconds", "number", 60.0, minimum=0, unit=SECONDS),
    Setting("threads", "int", None, minimum=1),
    Setting("timeout", "number", None, positive=True, sweep=False,
            unit=SECONDS),
    Setting("memory_limit", "number", None, positive=True, sweep=False,
            unit=" of MiB"),
    Setting("workers", "int", 1, minimum=1, sweep=False, commands=("matrix",)),
    Setting("executor", "string", "local", sweep=False, commands=("matrix",)),
)
"""The measurement settings, in the order a sweep varies them (the last fastest).
``timeout`` has no default here: each command has its own."""

BY_NAME = {s.name: s for s in SETTINGS}
DESCRIPTIVE = {"name": Setting("name", "string", None, sweep=False),
               "description": Setting("description", "string", None, sweep=False),
               "kind": Setting("kind", "choice", "benchmark", choices=KINDS, sweep=False)}
"""Keys that say what the scenario is rather than how it measures."""
LISTS = ("models", "backends")
"""Keys that take one name or a list of names (never a sweep: every model runs on every
backend in each group of the sweep)."""
SPELLINGS = {**{s.name: s.name for s in SETTINGS},
             **{alias: s.name for s in SETTINGS for alias in s.aliases},
             **{k: k for k in DESCRIPTIVE}, **{k: k for k in LISTS}}
"""Every key a file may use, to the setting it sets (``prompt_lens`` sets ``seq_len``)."""


def describe(value: Any) -> str:
    """How a value read from YAML is named in an error message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Scenario:
    """A checked scenario file.

    ``values`` maps each key given (by the setting it sets) to its value: a tuple for a
    sweep setting, models and backends; ``keys`` maps it to the key as spelled and its line
    (1-based), so that later checks name both.
    """

    path: str
    text: str
    values: dict[str, Any]
    keys: dict[str, tuple[str, int]]

    @property
    def kind(self) -> str:
        """``benchmark`` (the default) or ``matrix``."""
        return self.values.get("kind", "benchmark")

    @property
    def name(self) -> str | None:
        """The scenario's ``name``, if it gives one."""
        return self.values.get("name")

    def error(self, setting: str, message: str) -> UsageError:
        """A usage error ``FILE:LINE: KEY: message`` about ``setting`` (line 1 when the file
        does not give it)."""
        key, line = self.keys.get(setting, (setting, 1))
        return UsageError(f"{self.path}:{line}: {key}: {message}")

    def check_for(self, command: str) -> None:
        """Refuse keys that ``command`` (``benchmark`` or ``matrix``) does not take.

        :raises UsageError: ``FILE:LINE: KEY: ...`` for the first such key.
        """
        for setting in SETTINGS:
            if setting.name in self.values and command not in setting.commands:
                raise self.error(setting.name, f"is for hwaccel {' and '.join(setting.commands)}"
                                               f", not hwaccel {command}")
        if command != "benchmark" and AUTO in self.values.get("batch_size", ()):
            raise self.error("batch_size", f"auto is for hwaccel benchmark, not hwaccel "
                                           f"{command}")
