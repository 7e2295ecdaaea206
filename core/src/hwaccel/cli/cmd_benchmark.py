"""``hwaccel benchmark``: load time, latency percentiles, throughput and peak memory; with
``--new-tokens``, generation (time to the first token, per-token latency, tokens/s).

:func:`measure` runs a sweep of settings as one run: the sweep of ``--config``, and of
``hwaccel run`` for a scenario file of kind ``benchmark`` (which runs :func:`run`).
"""

from __future__ import annotations

import argparse
import socket
import uuid
from pathlib import Path
from typing import Any

from hwaccel.cli.measure_options import (
    add_measure_options,
    memory_limit_from,
    scenario_from,
    settings_of,
    sweep_from,
)

TIMEOUT = 600.0
"""Seconds before a benchmark job is killed, unless --timeout or the scenario says."""

#: the column naming each setting a sweep varies
SWEEP_COLUMNS = {"batch_size": "batch", "seq_len": "seq", "new_tokens": "new tokens",
                 "precision": "asked", "warmup": "warmup", "iterations": "min iters",
                 "min_seconds": "min s", "max_seconds": "max s", "threads": "threads asked"}

FORWARD_ONLY = ("items/s", "max diff")
"""Columns a table of generation rows only leaves out."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "benchmark", help="load time, latency percentiles, throughput, peak memory",
        description="Benchmark each model on each backend, one job process per pair with a "
                    "time and a memory limit: cold first call, warm-up, then at least "
                    "--iterations calls and --min-seconds; with --new-tokens, whole greedy "
                    "generations. Every result is kept in the DuckDB history.")
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="models to measure (default: the --config scenario's models)")
    parser.add_argument("--backend", dest="backends", action="append",
                        metavar="BACKEND", help="backend to measure on (each of its available "
                        "devices), or BACKEND:DEVICE for one device as `hwaccel detect` names "
                        "it (web:wasm, cuda:1, openvino:GPU.0); repeatable (default: the "
                        "--config scenario's backends)")
    add_measure_options(parser, timeout=TIMEOUT, auto_batch=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Plan, run and store the benchmarks (the sweep of ``--config``, if any); exit 1 when
    any job failed."""
    scenario = scenario_from(args, "benchmark")
    models = names(args.models, scenario, "models", "name a MODEL")
    backends = names(args.backends, scenario, "backends", "name one with --backend")
    return measure(models, backends, sweep_from(args, scenario), args, scenario)


def names(given: list[str] | None, scenario: Any, key: str, hint: str) -> list[str]:
    """Models or backends: those on the command line, else the scenario's.

    :raises UsageError: neither names any.
    """
    from hwaccel.errors import UsageError

    if given:
        return given
    if scenario is not None and key in scenario.values:
        return list(scenario.values[key])
    if scenario is not None:
        raise scenario.error(key, f"no {key}: {hint} on the command line or list {key} in "
                                  "the scenario")
    raise UsageError(f"no {key}: {hint}")


def measure(models: list[str], backends: list[str], points: list[dict[str, Any]],
            args: argparse.Namespace, scenario: Any = None) -> int:
    """Benchmark every model on every backend at each point of the sweep, as one run
    stored with the scenario (its text and path), and print the table or JSON.

    ``args`` carries ``db``, ``timeout``, ``memory_limit`` and ``json``. Returns the exit
    status: 1 when any job failed.
    """
    from hwaccel.running import benchmark

    memory_limit = memory_limit_from(args)
    # the job zygote imports torch and transformers while this process plans the jobs
    with benchmark.benchmark_pool(memory_limit).start() as pool:
        return _measure(models, backends, points, args, scenario, memory_limit, pool)


def _measure(models: list[str], backends: list[str], points: list[dict[str, Any]],
             args: argparse.Namespace, scenario: Any, memory_limit: float, pool: Any) -> int:
    """:func:`measure` with its job pool started."""
    from hwaccel.cli.output import err_console, print_json, warn_errors
    from hwaccel.hardware.detection import detect
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path
    from hwaccel.plugins import load
    from hwaccel.running import benchmark
    from hwaccel.scenarios.schema import AUTO

    plugins = load()
    report = detect(plugins)
    jobs, auto, errors = [], [], {}
    for point in points:
        planned, hook_errors = benchmark.plan(models, backends, plugins, report,
                                              settings_of(point), every_device=True)
        errors.update((str(e), e) for e in hook_errors)  # each point classifies again
        jobs += planned
        auto += [point["batch_size"] == AUTO] * len(planned)
    warn_errors(errors.values())
    db_path = Path(args.db or default_db_path())
    chosen: list[dict[str, Any]] = []
    if any(auto):
        jobs, chosen = auto_batched(jobs, auto, plugins, report, db_path, memory_limit,
                                    quiet=args.json)
    if scenario is not None and not args.json:
        named = f"{scenario.name!r} ({scenario.path})" if scenario.name else scenario.path
        err_console.print(f"scenario {named}: {_count(len(points), 'combination')} of "
                          f"settings x {_count(len(models), 'model')} x "
                          f"{_count(len(backends), 'backend')}: {_count(len(jobs), 'job')}",
                          highlight=False, soft_wrap=True)
    run_id = uuid.uuid4().hex
    with Store(db_path) as store:  # opened for each write only: other runs share the file
        store.start_run(run_id, "benchmark", len(jobs), {
            "settings": settings_of(points[0]).to_dict(), "sweep": points, "models": models,
            "backends": backends, "timeout_s": args.timeout,
            "memory_limit_mb": round(memory_limit), "batch_size_auto": chosen},
            socket.gethostname(), scenario=scenario.text if scenario else None,
            scenario_file=str(Path(scenario.path).resolve()) if scenario else None)
    status = "interrupted"
    try:
        results = _run_with_progress(jobs, db_path, run_id, args, memory_limit, err_console,
                                     pool)
        status = "finished"
    finally:
        with Store(db_path) as store:
            store.finish_run(run_id, status)
    if args.json:
        print_json({"db": str(db_path), "run_id": run_id,
                    "results": [r.to_dict() for r in results]})
    else:
        from hwaccel.scenarios.expand import varied

        shown = [n for n in SWEEP_COLUMNS if n in varied(points)
                 or (n == "batch_size" and any(auto))]
        print_table(f"Benchmark (run {run_id[:8]}, stored in {db_path})", jobs, results, shown)
    return 0 if all(r.success for r in results) else 1


def auto_batched(jobs: list[Any], auto: list[bool], plugins: Any, report: Any, db_path: Path,
                 memory_limit: float, quiet: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    """Give each job marked in ``auto`` the largest batch the memory estimate says fits
    (``hwaccel resources``' max batch, :class:`hwaccel.estimates.resources.Estimator`),
    printing one line per job on stderr; return the jobs and what was chosen, with its
    estimate, for the run's record. A job decided in advance keeps batch 1. The run confirms
    the choice: its row records the estimate (``details.batch_size_auto``), and a run killed
    for memory is tried again smaller (:class:`hwaccel.running.benchmark.Job`).

    A job is killed above ``memory_limit``, so the estimate is asked what fits the smaller
    of that limit and the free memory. Generation counts the KV cache of the prompt and
    every new token.

    :raises UsageError: the estimate cannot tell the largest batch (no runtime baseline).
    """
    import dataclasses

    from hwaccel.cli.output import err_console
    from hwaccel.errors import UsageError
    from hwaccel.estimates.resources import Estimator, host_memory
    from hwaccel.running.cells import device_label

    def on_measure(model: str, device: str) -> None:
        if not quiet:
            err_console.print(f"measuring the runtime baseline of {device} with {model} "
                              "(once; kept in the cache)", highlight=False, soft_wrap=True)

    estimator = Estimator(plugins, _within(report, memory_limit), db_path=db_path,
                          on_measure=on_measure)
    free, _ = host_memory(report)
    limited = " (the job's memory limit)" if free is None or memory_limit < free else ""
    out, chosen = [], []
    for job, is_auto in zip(jobs, auto, strict=True):
        if not is_auto or job.skip is not None:
            out.append(job)
            continue
        request = job.request
        settings = request.settings
        device = device_label(request.hardware.backend, request.hardware.device)
        estimate = estimator.estimate(request.model, request.hardware, batch_size=1,
                                      seq_len=settings.seq_len + settings.new_tokens,
                                      precision=settings.precision)
        if estimate.max_batch_size is None:
            raise UsageError(f"batch size auto: the memory estimate of {request.model} on "
                             f"{device} cannot tell the largest batch ({estimate.reason}); "
                             "give --batch-size")
        size = max(1, estimate.max_batch_size)
        per_sample = estimate.activations_mb + estimate.kv_cache_mb + estimate.state_mb
        basis = (f"at batch 1 it {estimate.reason}{limited}; {per_sample:,.2f} MiB more per "
                 f"sample ({estimate.source})")
        if not quiet:
            err_console.print(f"batch size auto: {size} for {request.model} on {device} "
                              f"(estimate: {basis})", highlight=False, soft_wrap=True)
        chosen.append({"model": request.model, "device": device, "batch_size": size,
                       "estimate": basis})
        out.append(dataclasses.replace(
            job, request=dataclasses.replace(
                request, settings=dataclasses.replace(settings, batch_size=size)),
            details={"batch_size_auto": {"estimated": size, "estimate": basis}},
            shrink_on_oom=True))
    return out, chosen


def _within(report: Any, memory_limit: float) -> Any:
    """``report`` with the free memory of every device that uses the host's memory capped
    at ``memory_limit`` MiB: what a job may use before it is killed."""
    import dataclasses

    from hwaccel.estimates.calibration import has_own_memory

    cap = int(memory_limit * 2**20)
    return dataclasses.replace(report, hardware=[
        dataclasses.replace(h, memory_available_bytes=min(h.memory_available_bytes, cap))
        if h.memory_available_bytes is not None and not has_own_memory(h) else h
        for h in report.hardware])


def _run_with_progress(jobs: list[Any], db_path: Path, run_id: str, args: argparse.Namespace,
                       memory_limit: float, console: Any, pool: Any) -> list[Any]:
    """Run the jobs in ``pool`` behind a progress bar on stderr (none with ``--json``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from hwaccel.running import benchmark

    with Progress(SpinnerColumn(), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=args.json) as progress:
        task = progress.add_task("benchmark", total=len(jobs))

        def on_start(job: benchmark.Job) -> None:
            settings = job.request.settings
            progress.update(task, description=f"{job.request.model} on "
                                              f"{job.request.hardware.device} (batch "
                                              f"{settings.batch_size}, seq {settings.seq_len}"
                                              f"{_tokens(settings.new_tokens)})")

        return benchmark.run(jobs, db_path, run_id, args.timeout, memory_limit,
                             on_start=on_start,
                             on_done=lambda job, result: progress.advance(task), pool=pool)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _tokens(new_tokens: int) -> str:
    return f", {new_tokens} new tokens" if new_tokens else ""


def print_table(title: str, jobs: list[Any], results: list[Any], sweep: list[str]) -> None:
    """The results table: a column per setting in ``sweep`` (what the sweep varies), the
    forward-call columns (but items/s and max diff when every job generated), and the
    generation columns when any job generated."""
    from hwaccel.cli.output import num, table
    from hwaccel.hardware.simulators import label
    from hwaccel.running.cells import device_label

    generating = [job.request.settings.new_tokens > 0 for job in jobs]
    columns = ["model", "device", *(SWEEP_COLUMNS[name] for name in sweep), "ok", "load s",
               "cold ms", "p50 ms", "p90 ms", "p99 ms", "items/s", "peak MiB", "iters",
               "threads", "precision", "max diff"]
    if all(generating):  # tok/s and match say it for generation rows
        columns = [c for c in columns if c not in FORWARD_ONLY]
    if any(generating):
        columns += ["TTFT ms", "tok p50 ms", "tok p90 ms", "tok/s", "match", "kv cache"]
    rows = []
    for job, r in zip(jobs, results, strict=True):
        settings = {**job.request.settings.to_dict(),
                    "iterations": job.request.settings.min_iterations}
        cells = {"model": r.model, "device": device_label(r.backend, r.device),
                 **{SWEEP_COLUMNS[n]: settings[n] for n in sweep},
                 "ok": "yes" if r.success else "no", "load s": num(r.load_time_s),
                 "cold ms": num(r.cold_ms),
                 **{column: f"{num(v)}{label(r.details)}" if v is not None else None
                    for column, v in (("p50 ms", r.p50_ms), ("p90 ms", r.p90_ms),
                                      ("p99 ms", r.p99_ms))},
                 "items/s": num(r.throughput, 1), "peak MiB": num(r.peak_rss_mb, 0),
                 "iters": r.iterations or None, "threads": r.threads,
                 "precision": r.precision if r.success else None,
                 "max diff": f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else None,
                 "TTFT ms": num(r.ttft_ms), "tok p50 ms": num(r.tpot_p50_ms),
                 "tok p90 ms": num(r.tpot_p90_ms), "tok/s": num(r.tokens_per_s, 1),
                 "match": f"{r.token_match:.0%}" if r.token_match is not None else None,
                 "kv cache": r.kv_cache,
                 "error": f"{r.error_category}: {r.error}" if not r.success else None}
        rows.append([cells[column] for column in [*columns, "error"]])
    table(title, [*columns, "error"], rows)
