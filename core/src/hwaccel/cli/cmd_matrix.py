"""``hwaccel matrix``: models x detected backends, each cell tested, measured and stored."""

from __future__ import annotations

import argparse
import uuid

from hwaccel.cli.measure_options import add_measure_options, settings_from


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "matrix", help="models x backends: generated test + benchmark per cell, stored",
        description="For every model and every detected device: render the generated test, "
                    "run it, then benchmark (timing pass, then memory pass), each in its own "
                    "process with a time and memory limit. Failures are recorded with their "
                    "category and the matrix goes on. Default models: the examples of every "
                    "pipeline plugin.")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help="models to measure")
    parser.add_argument("--pipelines", nargs="+", metavar="PIPELINE",
                        help="the example models of these pipelines")
    parser.add_argument("--backends", nargs="+", metavar="BACKEND",
                        help="only these backends (default: every detected backend)")
    parser.add_argument("--workers", type=int, default=1,
                        help="cells at once, on different compute resources and CPU cores")
    parser.add_argument("--resume", action="store_true",
                        help="skip cells already measured in the same configuration")
    parser.add_argument("--memory-limit", type=float, metavar="MIB",
                        help="kill a job above this resident memory (default: 80%% of the "
                             "memory available at the start)")
    parser.add_argument("--tests-dir", metavar="DIR",
                        help="keep the generated test files here (default: a temporary folder)")
    parser.add_argument("--refresh", action="store_true", help="detect hardware again")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any tested cell failed")
    add_measure_options(parser, timeout=300.0)
    parser.set_defaults(handler=run)


def _memory_limit(args: argparse.Namespace) -> float:
    from hwaccel.errors import UsageError

    if args.memory_limit is not None:
        if args.memory_limit <= 0:
            raise UsageError("--memory-limit must be > 0")
        return args.memory_limit
    import psutil

    return psutil.virtual_memory().available * 0.8 / 2**20


def run(args: argparse.Namespace) -> int:
    """Plan, run and record the matrix; exit 130 on Ctrl-C with every finished cell kept."""
    import tempfile
    from pathlib import Path

    from hwaccel import matrix
    from hwaccel.cli.matrix_progress import MatrixProgress
    from hwaccel.cli.output import print_json, warn_errors
    from hwaccel.detection import detect
    from hwaccel.errors import UsageError
    from hwaccel.paths import default_db_path
    from hwaccel.plugins import load
    from hwaccel.store import Store

    settings = settings_from(args)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    memory_limit = _memory_limit(args)
    plugins = load()
    report = detect(plugins, refresh=args.refresh)
    warn_errors(report.errors)
    models = list(args.models or [])
    if args.pipelines or not models:
        models += matrix.example_models(plugins, args.pipelines)
    if not models:
        raise UsageError("no models: name some with --models, or install pipeline plugins")
    cells, concurrency, errors = matrix.plan(models, plugins, report, settings,
                                             backends=args.backends, workers=args.workers)
    warn_errors(errors)
    db_path = Path(args.db or default_db_path())
    run_id = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="hwaccel-matrix-") as tmp:
        tests_dir = Path(args.tests_dir or tmp)
        progress = MatrixProgress(quiet=args.json)
        runner = matrix.MatrixRun(cells, plugins=plugins, db_path=db_path, run_id=run_id,
                                  tests_dir=tests_dir, timeout_s=args.timeout,
                                  concurrency=concurrency, memory_limit_mb=memory_limit,
                                  on_phase=progress.phase, on_done=progress.done)
        todo = cells
        if args.resume:
            done = runner.already_measured()
            todo = [c for c in cells if c.key not in done]
            progress.note(f"resume: {len(cells) - len(todo)} of {len(cells)} cells already "
                          "measured in this configuration")
        with Store(db_path, wait_s=30) as store:
            store.start_run(run_id, "matrix", len(todo), {
                "settings": settings.to_dict(), "models": models, "workers": args.workers,
                "concurrency": concurrency, "timeout_s": args.timeout,
                "memory_limit_mb": round(memory_limit), "resume": args.resume}, runner.node)
            if not report.cached:
                store.insert_detection(report.hardware, run_id)
        runnable = sum(c.skip is None for c in todo)
        progress.note(f"matrix run {run_id[:8]}: {runnable} cells to run "
                      f"({len(todo) - runnable} not testable here), {concurrency} at a time, "
                      f"memory limit {memory_limit:,.0f} MiB per job, database {db_path}")
        status = "interrupted"
        try:
            with progress.live(runnable):
                outcomes = runner.execute(todo)
            status = "finished"
        finally:
            with Store(db_path, wait_s=30) as store:
                store.finish_run(run_id, status)
            if status == "interrupted":
                progress.note(f"interrupted: {len(runner.outcomes)} of {len(todo)} cells were "
                              f"recorded in {db_path}; 'hwaccel matrix --resume' measures the "
                              "rest")
    if args.json:
        print_json({"db": str(db_path), "run_id": run_id, "cells": [
            {**o.result.to_dict(), **o.context} for o in outcomes]})
    else:
        progress.summary(outcomes, run_id, db_path)
    failed = [o for o in outcomes if not o.result.success and o.cell.skip is None]
    return 1 if args.strict and failed else 0
