"""Shared output helpers: JSON for scripts, rich tables for people, warnings on stderr.

``console`` (stdout) and ``err_console`` (stderr) are rich consoles made on first use, so a
command that prints only JSON never imports rich (tens of milliseconds of start-up). A table
written to something other than a terminal is drawn here, with the characters rich would
print, when rich would print its text as it is (:func:`plain_table`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


PLAIN_WIDTH = 200
"""The width of stdout's console without a terminal (rich would wrap tables at 80 columns)."""
RICH_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
"""Variables with which rich may style output that is not a terminal."""
_RICH_SYNTAX = re.compile(r"\[|:\S*:|[^ -~]")
"""What rich may not print as it is: markup (``[bold]``), an emoji code (``:smile:``), a
character outside printable ASCII (wide, combining, a tab or a newline)."""


@functools.cache
def _console(stderr: bool) -> Any:
    from rich.console import Console

    if stderr:
        return Console(stderr=True)
    # Without a terminal (pipes, CI logs) rich would wrap tables at 80 columns.
    return Console(width=None if sys.stdout.isatty() else PLAIN_WIDTH)


def __getattr__(name: str) -> Any:
    """Make ``console`` and ``err_console`` on their first use."""
    if name in ("console", "err_console"):
        return _console(stderr=name == "err_console")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """Print a table on stdout; ``None`` cells show as a dash.

    Without a terminal, a table that rich would print as it is (:func:`plain_table`) is
    written directly, the same characters without importing rich; otherwise rich draws it.
    """
    columns = list(columns)
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    lines = plain_table(title, columns, cells) if _plain_stdout() else None
    if lines is None:
        _console(stderr=False).print(rich_table(title, columns, cells))
    else:
        sys.stdout.write("".join(f"{line}\n" for line in lines))


def rich_table(title: str, columns: list[str], cells: list[list[str]]) -> Any:
    """The rich table of a title, column headers and rows of text."""
    from rich.table import Table

    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in cells:
        out.add_row(*row)
    return out


def _plain_stdout() -> bool:
    """Whether rich would write stdout without styles, at :data:`PLAIN_WIDTH`, in box
    characters: not a terminal, no variable forcing one, an encoding of Unicode."""
    return (not sys.stdout.isatty() and sys.platform != "win32"
            and (sys.stdout.encoding or "").lower().startswith("utf")
            and not any(os.environ.get(name) is not None for name in RICH_TERMINAL_VARIABLES))


def plain_table(title: str, columns: list[str], cells: list[list[str]]) -> list[str] | None:
    """The lines rich prints for :func:`rich_table` on a console without styles
    :data:`PLAIN_WIDTH` wide, or ``None`` where rich would not print the text as it is: markup,
    an emoji code or a character other than printable ASCII in it, or a table or title wider
    than the console (rich would wrap them)."""
    texts = [title, *columns, *(cell for row in cells for cell in row)]
    if not columns or any(len(row) != len(columns) for row in cells) or \
            any(_RICH_SYNTAX.search(text) for text in texts):
        return None
    widths = [max(len(text) for text in column) for column in zip(columns, *cells, strict=True)]
    width = sum(widths) + 3 * len(widths) + 1
    if width > PLAIN_WIDTH or len(title) > width:
        return None

    def line(left: str, fill: str, middle: str, right: str, texts: list[str] | None = None) -> str:
        """A rule of ``fill`` characters, or a row of ``texts``, with its box characters."""
        parts = [fill * (size + 2) for size in widths] if texts is None else \
            [f" {text.ljust(size)} " for text, size in zip(texts, widths, strict=True)]
        return left + middle.join(parts) + right

    return [title.ljust(width), line("┏", "━", "┳", "┓"), line("┃", "", "┃", "┃", columns),
            line("┡", "━", "╇", "┩"), *(line("│", "", "│", "│", row) for row in cells),
            line("└", "─", "┴", "┘")]


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
