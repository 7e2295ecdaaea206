"""Shared output helpers: JSON for scripts, rich tables for people, warnings on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

# Without a terminal (pipes, CI logs) rich would wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """Print a table on stdout; ``None`` cells show as a dash."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("-" if cell is None else str(cell) for cell in row))
    console.print(out)


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


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
