"""``hwaccel history`` and ``hwaccel query``: read the DuckDB history.

Both open the database read-only, so nothing a user types can change or damage it, and only
while they read, so they work during a run (waiting, bounded, for a write in progress); a
query also cannot touch a file or run without end (:mod:`hwaccel.models.user_query`). A run's status
is ``running``, ``finished`` or ``interrupted`` (Ctrl-C, or its process found gone:
shown at once, recorded by the next command that writes).
"""

from __future__ import annotations

import argparse

from hwaccel.kit.failures import NOT_RUN_CATEGORIES
from hwaccel.models.user_query import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S

_NOT_RUN = ", ".join(f"'{category}'" for category in NOT_RUN_CATEGORIES)
RUNS_SQL = f"""
SELECT coalesce(s.run_id, r.run_id) AS run_id, coalesce(s.command, r.source) AS command,
       coalesce(s.started, r.first) AS started, s.status, s.planned,
       coalesce(r.cells, 0) AS cells, coalesce(r.passed, 0) AS passed,
       coalesce(r.failed, 0) AS failed, coalesce(r.not_tested, 0) AS not_tested,
       coalesce(r.models, 0) AS models, r.backends, {{scenario}}
FROM (SELECT run_id, any_value(source) AS source, min(timestamp) AS first,
             count(*) AS cells,
             count(*) FILTER (WHERE success) AS passed,
             count(*) FILTER (WHERE NOT success AND error_category NOT IN ({_NOT_RUN}))
                 AS failed,
             count(*) FILTER (WHERE error_category IN ({_NOT_RUN})) AS not_tested,
             count(DISTINCT model_id) AS models,
             string_agg(DISTINCT hardware, ',' ORDER BY hardware) AS backends
      FROM hardware_results GROUP BY run_id) r
FULL JOIN runs s ON s.run_id = r.run_id
ORDER BY started DESC
LIMIT ?
"""
SCENARIO_COLUMNS = "s.scenario_file, s.scenario"
NO_SCENARIO_COLUMNS = "NULL AS scenario_file, NULL AS scenario"  # a database before migration 6

SCENARIO_SQL = """
SELECT run_id, scenario_file, scenario FROM runs
WHERE run_id LIKE ? || '%' AND scenario IS NOT NULL
ORDER BY started DESC
"""

ROWS_SQL = """
SELECT timestamp, run_id, model_id, pipeline, hardware, device, success, error_category,
       p50_ms, p90_ms, throughput, memory_usage, threads, load_avg, test_status
FROM hardware_results
WHERE (? IS NULL OR model_id = ?) AND (? IS NULL OR hardware = ?)
  AND (? IS NULL OR run_id LIKE ? || '%')
ORDER BY timestamp DESC
LIMIT ?
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``history`` and ``query``."""
    history = sub.add_parser(
        "history", help="past runs, or the recorded rows of a model, backend or run",
        description="Without filters: one line per run (newest first) with its status, the "
                    "cells it planned, the counts of its recorded rows and the scenario file "
                    "it ran (its path and name; --json adds its text). With --model, "
                    "--backend or --run: the recorded rows themselves, and with --run the "
                    "text of the run's scenario.")
    history.add_argument("--model", help="rows of this model")
    history.add_argument("--backend", help="rows of this backend")
    history.add_argument("--run", help="rows of this run (a prefix of its id is enough)")
    history.add_argument("--limit", type=int, default=20, help="at most this many lines")
    history.add_argument("--db", help="DuckDB file (default: in the user cache folder)")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(handler=run_history)
    query = sub.add_parser(
        "query", help="run SQL on the history (read-only)",
        description="Run one SELECT statement on the history, read-only, with no access to "
                    "files or the network. Tables: hardware_results, hardware_detection, "
                    "runs, schema_version.")
    query.add_argument("sql", metavar="SQL")
    query.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                       help=f"stop the query after this many seconds "
                            f"(default {DEFAULT_TIMEOUT_S:g})")
    query.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS,
                       help=f"print at most this many rows (default {DEFAULT_MAX_ROWS})")
    query.add_argument("--db", help="DuckDB file (default: in the user cache folder)")
    query.add_argument("--json", action="store_true", help="print JSON")
    query.set_defaults(handler=run_query)


def _open(args: argparse.Namespace):  # noqa: ANN202 - a Store, imported lazily
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path

    return Store(args.db or default_db_path(), read_only=True)


def _show(rows: list[dict], title: str, as_json: bool) -> None:
    from hwaccel.cli.output import print_json, table

    if as_json:
        print_json(rows)
    elif rows:
        table(title, list(rows[0]), [list(r.values()) for r in rows])
    else:
        print(f"{title}: no rows")


def run_history(args: argparse.Namespace) -> int:
    """Print the runs (with the scenario file each ran, if any), or the rows a filter
    selects (with ``--run``, and the text of the run's scenario)."""
    from hwaccel.errors import UsageError

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with _open(args) as store:
        scenarios = _has_scenarios(store)
        if args.model or args.backend or args.run:
            rows = store.query(ROWS_SQL, [args.model, args.model, args.backend, args.backend,
                                          args.run, args.run, args.limit])
            _show(rows, "Recorded rows (newest first)", args.json)
            if args.run and scenarios and not args.json:
                for run in store.query(SCENARIO_SQL, [args.run]):
                    print(f"\nScenario of run {run['run_id'][:8]} ({run['scenario_file']}):"
                          f"\n{run['scenario'].rstrip()}")
        else:
            sql = RUNS_SQL.format(scenario=SCENARIO_COLUMNS if scenarios
                                  else NO_SCENARIO_COLUMNS)
            runs = [_named(run) for run in
                    store.with_gone_runs_interrupted(store.query(sql, [args.limit]))]
            if not args.json:  # the text itself: with --run, or in the JSON
                runs = [{k: v for k, v in run.items() if k != "scenario"} for run in runs]
            _show(runs, "Runs (newest first)", args.json)
    return 0


def _has_scenarios(store) -> bool:  # noqa: ANN001 - a Store, imported lazily
    """Whether the database records scenarios (migration 6; a read-only open migrates
    nothing)."""
    return bool(store.query("SELECT 1 FROM duckdb_columns() WHERE table_name = 'runs' "
                            "AND column_name = 'scenario'"))


def _named(run: dict) -> dict:
    """``run`` with ``scenario_name``: the ``name`` its scenario text gives (``None`` when
    it gives none, or no longer reads as a scenario)."""
    from hwaccel.errors import UsageError
    from hwaccel.scenarios.load import parse

    name = None
    if run.get("scenario"):
        try:
            name = parse(run["scenario"], run["scenario_file"] or "scenario").name
        except UsageError:
            pass
    return {**run, "scenario_name": name}


def run_query(args: argparse.Namespace) -> int:
    """Run the user's one SELECT read-only, locked down and bounded
    (:mod:`hwaccel.models.user_query`), and print its rows."""
    import sys

    from hwaccel.models.user_query import run_user_query

    with _open(args) as store:
        result = run_user_query(store.conn, args.sql, timeout_s=args.timeout,
                                max_rows=args.max_rows)
    _show(result.rows, "Query", args.json)
    if result.truncated:
        print(f"hwaccel: the first {args.max_rows} rows only (--max-rows)", file=sys.stderr)
    return 0
