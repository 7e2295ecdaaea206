"""``hwaccel report``: the compatibility matrix and error report, as Markdown, JSON or HTML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = ("md", "json", "html")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "report", help="compatibility and error report: Markdown, JSON, HTML with charts",
        description="Report what the history measured: the family/pipeline x backend matrix "
                    "(pass, fail with reason, not tested), speed-up against the CPU, the "
                    "fastest backend and the memory per model, generation (time to the first "
                    "token, per-token latency, tokens/s), each precision a device ran, batch "
                    "and length sweeps, trends over runs. With "
                    "--collect-all, --check-model or --test-hardware it adds the compatibility "
                    "errors found now, each with a severity and recommendations.")
    parser.add_argument("--format", dest="formats", nargs="+", choices=FORMATS,
                        help="md, json and/or html (default: md on stdout; all three with "
                             "--output-dir)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="write hwaccel-report.{md,json,html} here")
    parser.add_argument("--run", dest="runs", nargs="+", metavar="RUN",
                        help="only these runs (an id or a unique prefix of one)")
    parser.add_argument("--collect-all", action="store_true",
                        help="add plugin, detection and resource errors found now")
    parser.add_argument("--check-model", dest="check_models", nargs="+", metavar="MODEL",
                        default=[], help="add what stops these models on each backend")
    parser.add_argument("--test-hardware", action="store_true",
                        help="run one tiny model on every available device and add failures")
    parser.add_argument("--db", help="DuckDB file (default: in the user cache folder)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (the report, or the written files)")
    parser.set_defaults(handler=run)


def _formats(args: argparse.Namespace) -> tuple[str, ...]:
    from hwaccel.errors import UsageError

    if args.json and not args.output_dir:
        if args.formats and args.formats != ["json"]:
            raise UsageError("--json prints the JSON report; drop --format or use --output-dir")
        return ("json",)
    formats = tuple(dict.fromkeys(args.formats or (FORMATS if args.output_dir else ("md",))))
    if len(formats) > 1 and not args.output_dir:
        raise UsageError("several formats need --output-dir")
    return formats


def _resolve_runs(store: Any, prefixes: list[str]) -> list[str]:
    """Return the run id each prefix names, among runs with rows and those in ``runs`` (an
    interrupted run may have recorded nothing)."""
    from hwaccel.errors import UsageError

    sources = ["SELECT run_id FROM hardware_results"]
    if store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'runs'"):
        sources.append("SELECT run_id FROM runs")
    found = []
    for prefix in prefixes:
        ids = [r["run_id"] for r in store.query(
            f"SELECT DISTINCT run_id FROM ({' UNION '.join(sources)}) "
            "WHERE starts_with(run_id, ?)", [prefix])]
        if len(ids) != 1:
            raise UsageError(f"run {prefix!r} matches {len(ids)} runs; give more of its id")
        found.extend(ids)
    return found


def _compatibility(args: argparse.Namespace, db_path: Path) -> dict[str, Any] | None:
    if not (args.collect_all or args.check_models or args.test_hardware):
        return None
    from hwaccel.compat.compatibility import HardwareCompatibilityReporter

    reporter = HardwareCompatibilityReporter(db_path=db_path if db_path.is_file() else None)
    reporter.check_components()
    reporter.collect_hardware_detection_errors()
    if args.collect_all:
        reporter.collect_resource_pool_errors()
    for model in args.check_models:
        reporter.collect_model_integration_errors(model)
    if args.test_hardware:
        reporter.test_full_hardware_stack()
    return reporter.to_dict()


def run(args: argparse.Namespace) -> int:
    """Build the report from the history (plus findings on request) and print or write it."""
    from hwaccel.cli.output import print_json
    from hwaccel.history.report import build_report
    from hwaccel.history.report_render import (
        render_html,
        render_json,
        render_markdown,
        write_reports,
    )
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path

    formats = _formats(args)
    db_path = Path(args.db or default_db_path()).expanduser()
    compatibility = _compatibility(args, db_path)
    # With findings to report, a missing database is an empty history, not an error.
    read_only = db_path.is_file() or compatibility is None
    with Store(db_path, read_only=read_only) as store:
        data = build_report(store, run_ids=_resolve_runs(store, args.runs or []) or None)
    if compatibility is not None:
        data["compatibility"] = compatibility
    if args.output_dir:
        written = write_reports(data, Path(args.output_dir), formats)
        if args.json:
            print_json({"files": [str(p) for p in written]})
        else:
            for path in written:
                print(path)
        return 0
    render = {"md": render_markdown, "json": render_json, "html": render_html}[formats[0]]
    text = render(data)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0
