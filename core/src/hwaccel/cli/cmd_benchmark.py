"""``hwaccel benchmark``: load time, latency percentiles, throughput and peak memory."""

from __future__ import annotations

import argparse
import socket
import uuid
from pathlib import Path

from hwaccel.cli.measure_options import add_measure_options, memory_limit_from, settings_from


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "benchmark", help="load time, latency percentiles, throughput, peak memory",
        description="Benchmark each model on each backend, one job process per pair with a "
                    "time and a memory limit: cold first call, warm-up, then at least "
                    "--iterations calls and --min-seconds. Every result is kept in the DuckDB "
                    "history.")
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--backend", dest="backends", action="append", required=True,
                        metavar="BACKEND", help="backend to measure on (each of its available "
                        "devices), or BACKEND:DEVICE for one device as `hwaccel detect` names "
                        "it (web:wasm, cuda:1, openvino:GPU.0); repeatable")
    add_measure_options(parser, timeout=600.0)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Plan, run and store the benchmarks; exit 1 when any job failed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from hwaccel.cli.output import err_console, num, print_json, table, warn_errors
    from hwaccel.hardware.detection import detect
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path
    from hwaccel.plugins import load
    from hwaccel.running import benchmark

    settings = settings_from(args)
    memory_limit = memory_limit_from(args)
    plugins = load()
    report = detect(plugins)
    jobs, errors = benchmark.plan(args.models, args.backends, plugins, report, settings,
                                  every_device=True)
    warn_errors(errors)
    db_path = Path(args.db or default_db_path())
    run_id = uuid.uuid4().hex
    with Store(db_path) as store:  # opened for each write only: other runs share the file
        store.start_run(run_id, "benchmark", len(jobs), {
            "settings": settings.to_dict(), "models": args.models, "backends": args.backends,
            "timeout_s": args.timeout, "memory_limit_mb": round(memory_limit)},
            socket.gethostname())
    status = "interrupted"
    try:
        with Progress(SpinnerColumn(), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=args.json) as progress:
            task = progress.add_task("benchmark", total=len(jobs))

            def on_start(job: benchmark.Job) -> None:
                progress.update(task, description=f"{job.request.model} on "
                                                  f"{job.request.hardware.device}")

            results = benchmark.run(jobs, db_path, run_id, args.timeout, memory_limit,
                                    on_start=on_start,
                                    on_done=lambda job, result: progress.advance(task))
        status = "finished"
    finally:
        with Store(db_path) as store:
            store.finish_run(run_id, status)
    if args.json:
        print_json({"db": str(db_path), "run_id": run_id,
                    "results": [r.to_dict() for r in results]})
    else:
        from hwaccel.hardware.simulators import label
        from hwaccel.running.cells import device_label

        table(f"Benchmark (run {run_id[:8]}, stored in {db_path})",
              ["model", "device", "ok", "load s", "cold ms", "p50 ms", "p90 ms", "p99 ms",
               "items/s", "peak MiB", "iters", "threads", "precision", "max diff", "error"],
              [[r.model, device_label(r.backend, r.device), "yes" if r.success else "no",
                num(r.load_time_s), num(r.cold_ms),
                *(f"{num(v)}{label(r.details)}" if v is not None else None
                  for v in (r.p50_ms, r.p90_ms, r.p99_ms)),
                num(r.throughput, 1), num(r.peak_rss_mb, 0), r.iterations or None, r.threads,
                r.precision if r.success else None,
                f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else None,
                f"{r.error_category}: {r.error}" if not r.success else None]
               for r in results])
    return 0 if all(r.success for r in results) else 1
