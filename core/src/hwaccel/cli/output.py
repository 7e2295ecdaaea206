"""Shared output helpers: JSON for scripts, rich tables for people, warnings on stderr.

``console`` (stdout) and ``err_console`` (stderr) are rich consoles made on first use, so a
command that prints only JSON never imports rich (tens of milliseconds of start-up).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterable
from typing import Any


@functools.cache
def _console(stderr: bool) -> Any:
    from rich.console import Console

    if stderr:
        return Console(stderr=True)
    # Without a terminal (pipes, CI logs) rich would wrap tables at 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


def __getattr__(name: str) -> Any:
    """Make ``console`` and ``err_console`` on their first use."""
    if name in ("console", "err_console"):
        return _console(stderr=name == "err_console")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """Print a table on stdout; ``None`` cells show as a dash."""
    from rich.table import Table

    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("-" if cell is None else str(cell) for cell in row))
    _console(stderr=False).print(out)


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    _console(stderr=True).print(f"[yellow]warning:[/yellow] {message}", highlight=False,
                                soft_wrap=True)


def warn_errors(errors: Iterable[Any]) -> None:
    """Print each plugin hook error as a warning."""
    for error in errors:
        warn(str(error))


def mib(value: int | float | None) -> str | None:
    """Format a byte count as MiB."""
    return None if value is None else f"{value / 2**20:,.0f} MiB"


def num(value: float | None, digits: int = 2) -> str | None:
    """Format a float, or ``None``."""
    return None if value is None else f"{value:,.{digits}f}"
