"""One statement of a user's SQL on the history: reads only, touches no file, ends in time.

``hwaccel query`` opens the database read-only, but DuckDB's own functions reach further than
its tables: ``COPY ... TO`` and ``EXPORT DATABASE`` write files, ``read_text``/``read_blob``
and ``glob`` read any file, ``INSTALL`` fetches extensions. :func:`run_user_query` therefore
takes exactly one ``SELECT`` statement (``WITH ... SELECT`` included), runs it on a
connection whose external access is switched off and whose configuration is then locked
(:data:`LOCKDOWN`, so the statement cannot switch it back), stops it after ``timeout_s``
(DuckDB's ``interrupt``) and keeps at most ``max_rows`` rows. Every refusal is a
:class:`~hwaccel.errors.UsageError`: one line, exit 2.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from hwaccel.errors import UsageError

LOCKDOWN = ("SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET lock_configuration = true")
"""Run on the connection before the user's statement: no files, no extensions, no changes."""
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 10_000


@dataclass(frozen=True)
class QueryResult:
    """The rows a query returned (at most the limit) and whether more were left out."""

    rows: list[dict[str, Any]]
    truncated: bool


def check_limits(timeout_s: float, max_rows: int) -> None:
    """Refuse a time limit that is not a positive finite number, or a row limit below 1."""
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout_s}")
    if max_rows < 1:
        raise UsageError(f"--max-rows must be at least 1, not {max_rows}")


def the_statement(conn: Any, sql: str) -> str:
    """The one ``SELECT`` statement of ``sql``, else a usage error saying what is wrong."""
    import duckdb

    if not sql.strip().strip(";").strip():
        raise UsageError("the query is empty: give one SQL statement (SELECT ...)")
    try:
        statements = conn.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise UsageError(f"one SQL statement at a time, not {len(statements)}")
    (statement,) = statements
    kind = str(statement.type).rsplit(".", 1)[-1]
    if kind != "SELECT":
        raise UsageError(f"the query only reads the history: {kind} statements are refused "
                         "(use SELECT)")
    return str(statement.query)


def run_user_query(conn: Any, sql: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                   max_rows: int = DEFAULT_MAX_ROWS) -> QueryResult:
    """Run the one ``SELECT`` of ``sql`` on ``conn`` (a read-only DuckDB connection) locked
    down, within ``timeout_s`` seconds, keeping at most ``max_rows`` rows.

    :raises UsageError: for an empty query, several statements, a statement that is not a
        ``SELECT``, one DuckDB refuses (a file it may not touch, a syntax error), or one that
        runs past the time limit.
    """
    import duckdb

    check_limits(timeout_s, max_rows)
    statement = the_statement(conn, sql)
    for setting in LOCKDOWN:
        conn.execute(setting)
    timer = threading.Timer(timeout_s, conn.interrupt)
    timer.start()
    try:
        cursor = conn.execute(statement)
        names = [column[0] for column in cursor.description or []]
        fetched = cursor.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise UsageError(f"query stopped after {timeout_s:g} s (--timeout)") from None
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        timer.cancel()
    rows = [dict(zip(names, row, strict=True)) for row in fetched[:max_rows]]
    return QueryResult(rows, truncated=len(fetched) > max_rows)
