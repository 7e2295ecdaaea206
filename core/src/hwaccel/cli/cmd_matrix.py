"""``hwaccel matrix``: models x detected backends, each cell tested, measured and stored."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from hwaccel.cli.measure_options import (
    add_measure_options,
    memory_limit_from,
    scenario_from,
    settings_of,
    sweep_from,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "matrix", help="models x backends: generated test + benchmark per cell, stored",
        description="For every model and every detected device: render the generated test, "
                    "run it, then benchmark it, each in its own "
                    "process with a time and memory limit. Failures are recorded with their "
                    "category and the matrix goes on. Default models: the examples of every "
                    "pipeline plugin.")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="models to measure (default: the --config scenario's models, "
                             "else the examples of every pipeline plugin)")
    parser.add_argument("--pipelines", nargs="+", metavar="PIPELINE",
                        help="the example models of these pipelines")
    parser.add_argument("--backends", nargs="+", metavar="BACKEND",
                        help="only these backends (default: the --config scenario's "
                             "backends, else every detected backend)")
    parser.add_argument("--skip-backends", nargs="+", metavar="BACKEND", default=[],
                        help="leave these detected backends out")
    parser.add_argument("--workers", type=int,
                        help="cells at once, on different compute resources and CPU cores "
                             "(local executor; default: 1)")
    parser.add_argument("--executor", metavar="NAME",
                        help="where cells run: 'local' (this machine, the default) or an "
                             "installed executor such as 'ray' (hwaccel-ray)")
    parser.add_argument("--address", metavar="ADDR",
                        help="the cluster of the executor (ray: the head node's host:port; "
                             "default: a one-node cluster of this machine, on loopback)")
    parser.add_argument("--resume", action="store_true",
                        help="skip cells already measured in the same configuration")
    parser.add_argument("--tests-dir", metavar="DIR",
                        help="keep the generated test files here (default: a temporary folder)")
    parser.add_argument("--refresh", action="store_true", help="detect hardware again")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any tested cell failed")
    add_measure_options(parser, timeout=300.0)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Plan, run and record the matrix (one matrix run per point of the ``--config``
    scenario's sweep); exit 130 on Ctrl-C with every finished cell kept."""
    import tempfile
    from pathlib import Path

    from hwaccel.cli.matrix_progress import MatrixProgress
    from hwaccel.cli.output import print_json
    from hwaccel.errors import UsageError
    from hwaccel.plugins import load
    from hwaccel.running import executors

    scenario = scenario_from(args, "matrix")
    points = sweep_from(args, scenario)
    for key in ("models", "backends"):
        if not getattr(args, key) and scenario is not None and key in scenario.values:
            setattr(args, key, list(scenario.values[key]))
    executor_class = executors.load(args.executor)
    if args.address and executor_class.runs_here:
        raise UsageError(f"--address needs an executor that runs cells elsewhere; "
                         f"{args.executor!r} runs them on this machine")
    if args.workers > 1 and not executor_class.runs_here:
        raise UsageError(f"--workers is for the local executor; {args.executor!r} runs one "
                         "timed cell per compute resource of each node")
    memory_limit = memory_limit_from(args, executor_class.runs_here)
    plugins = load()
    statuses, reports = [], []
    for point in points:  # each a matrix run of its own, with an executor of its own
        with tempfile.TemporaryDirectory(prefix="hwaccel-matrix-") as tmp:
            progress = MatrixProgress(quiet=args.json, show_node=not executor_class.runs_here)
            executor = executor_class(executors.ExecutorOptions(
                plugins, Path(args.tests_dir or tmp), args.timeout, memory_limit,
                args.address, on_phase=progress.phase))
            try:
                status, report = _run(args, settings_of(point), executor, memory_limit,
                                      progress, scenario, points)
            finally:
                executor.close()
        statuses.append(status)
        reports.append(report)
    if args.json:
        print_json(reports[0] if len(reports) == 1 else {"runs": reports})
    return max(statuses)


def _run(args: argparse.Namespace, settings: Any, executor: Any, memory_limit: float | None,
         progress: Any, scenario: Any, points: list[dict[str, Any]]
         ) -> tuple[int, dict[str, Any]]:
    """Detect, plan and run the matrix of ``settings`` (a point of the sweep ``points``)
    with ``executor``, stored with ``scenario`` (or ``None``); return the exit status and
    the run's JSON report."""
    from pathlib import Path

    from hwaccel.cli.output import warn_errors
    from hwaccel.errors import UsageError
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path
    from hwaccel.running import matrix

    plugins = executor.options.plugins
    report = executor.detect(refresh=args.refresh)
    warn_errors(report.errors)
    models = list(args.models or [])
    if args.pipelines or not models:
        models += matrix.example_models(plugins, args.pipelines)
    if not models:
        raise UsageError("no models: name some with --models, or install pipeline plugins")
    backends = args.backends
    if args.skip_backends:
        report.check_backends(args.skip_backends)
        backends = [b for b in backends or sorted({h.backend for h in report.hardware})
                    if b not in args.skip_backends]
        if not backends:
            raise UsageError("--skip-backends leaves no backend to measure")
    cells, concurrency, errors = matrix.plan(models, plugins, report, settings,
                                             backends=backends, workers=args.workers)
    warn_errors(errors)
    cells = executor.screen(cells)
    db_path = Path(args.db or default_db_path())
    run_id = uuid.uuid4().hex
    runner = matrix.MatrixRun(cells, executor=executor, db_path=db_path, run_id=run_id,
                              on_done=progress.done)
    todo = cells
    if args.resume:
        done = runner.already_measured()
        todo = [c for c in cells if c.key not in done]
        progress.note(f"resume: {len(cells) - len(todo)} of {len(cells)} cells already "
                      "measured in this configuration")
    with Store(db_path) as store:
        store.start_run(run_id, "matrix", len(todo), {
            "settings": settings.to_dict(), "models": models, "workers": args.workers,
            "concurrency": concurrency, "timeout_s": args.timeout, "executor": executor.name,
            "address": args.address,
            "memory_limit_mb": round(memory_limit) if memory_limit else None,
            "resume": args.resume, "sweep": points}, runner.node,
            scenario=scenario.text if scenario else None,
            scenario_file=str(Path(scenario.path).resolve()) if scenario else None)
        if not report.cached:
            store.insert_detection(report.hardware, run_id)
    runnable = sum(c.skip is None for c in todo)
    limit = f"{memory_limit:,.0f} MiB" if memory_limit else "80% of each node's available"
    progress.note(f"matrix run {run_id[:8]}: {runnable} cells to run "
                  f"({len(todo) - runnable} not testable here), {executor.describe(todo)}, "
                  f"memory limit {limit} per job, database {db_path}")
    status = "interrupted"
    try:
        with progress.live(runnable):
            outcomes = runner.execute(todo)
        status = "finished"
    finally:
        with Store(db_path) as store:
            store.finish_run(run_id, status)
        if status == "interrupted":
            progress.note(f"interrupted: {len(runner.outcomes)} of {len(todo)} cells were "
                          f"recorded in {db_path}; 'hwaccel matrix --resume' measures the "
                          "rest")
    if not args.json:
        progress.summary(outcomes, run_id, db_path)
    failed = [o for o in outcomes if not o.result.success and o.cell.skip is None]
    return 1 if args.strict and failed else 0, {
        "db": str(db_path), "run_id": run_id, "executor": executor.name,
        "cells": [{**o.result.to_dict(), **o.context} for o in outcomes]}
