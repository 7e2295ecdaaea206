"""Numbers that settings read from environment variables, checked as options are.

``NaN`` passes every comparison, so a plain ``<= 0`` check lets it through and silently
turns a limit off; every such variable is read here instead.
"""

from __future__ import annotations

import math
import os

from hwaccel.errors import UsageError


def env_number(name: str, *, allow_zero: bool = False) -> float | None:
    """The number the environment variable ``name`` holds, ``None`` when it is unset or empty.

    :raises UsageError: one line when it is not a finite number above 0 (or 0, with
        ``allow_zero``).
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "above 0"
        raise UsageError(f"{name} must be a finite number {least}, not {text!r}")
    return number
