"""The measurement options that ``hwaccel benchmark``, ``hwaccel matrix`` and ``hwaccel run``
share, and their precedence over a scenario file (``--config``).

Every option defaults to ``None`` here so that a value typed on the command line can be told
from one left out: a typed value wins, then the scenario file's, then the default of
:data:`hwaccel.scenarios.schema.SETTINGS` (the same table checks both).
"""

from __future__ import annotations

import argparse
from typing import Any

from hwaccel.scenarios.schema import AUTO, BY_NAME, PRECISIONS


def batch_size(text: str) -> int | str:
    """``--batch-size``: a whole number, or ``auto``."""
    return AUTO if text == AUTO else int(text)


def _default(name: str) -> str:
    return f"(default: {BY_NAME[name].default})"


def add_measure_options(parser: argparse.ArgumentParser, *, timeout: float | None,
                        config: bool = True, auto_batch: bool = False) -> None:
    """Add the scenario file (``config``), batch, sequence, generation, warm-up, iteration,
    thread, precision, time- and memory-limit options; ``timeout`` is the command's default
    (``None``: the scenario's command decides), ``auto_batch`` lets ``--batch-size`` be
    ``auto``."""
    if config:
        parser.add_argument("--config", metavar="FILE",
                            help="a scenario file (YAML, docs/scenarios.md) whose settings are "
                                 "the defaults: an option given here wins over the file, "
                                 "the file over the built-in default")
    parser.add_argument("--db", help="DuckDB file (default: in the user cache folder)")
    auto = ("; auto: the largest batch the memory estimate says fits the job's memory "
            "limit (as `hwaccel resources` computes it), then measured")
    parser.add_argument("--batch-size", type=batch_size if auto_batch else int, metavar="N",
                        help=f"samples per call {_default('batch_size')}"
                             f"{auto if auto_batch else ''}")
    parser.add_argument("--seq-len", type=int, metavar="N",
                        help=f"tokens per sequence {_default('seq_len')}")
    parser.add_argument("--prompt-len", type=int, metavar="N",
                        help="the prompt's tokens of a generation benchmark (--new-tokens): "
                             "the same setting as --seq-len")
    parser.add_argument("--new-tokens", type=int, metavar="N",
                        help="greedily generate N tokens after the prompt and time the whole "
                             "generation, the first token and each next one; 0: one forward "
                             f"call, no generation {_default('new_tokens')}")
    parser.add_argument("--kv-cache", choices=("dynamic", "static"),
                        help="the cache a PyTorch model's generation keeps: transformers' "
                             "dynamic cache, or its preallocated static cache; a device that "
                             "cannot honour static refuses it "
                             f"{_default('kv_cache')}")
    parser.add_argument("--warmup", type=int, metavar="N",
                        help=f"untimed calls after the cold one {_default('warmup')}")
    parser.add_argument("--iterations", type=int, metavar="N",
                        help=f"minimum timed calls {_default('iterations')}")
    parser.add_argument("--min-seconds", type=float, metavar="S",
                        help=f"minimum timed seconds {_default('min_seconds')}")
    parser.add_argument("--max-seconds", type=float, metavar="S",
                        help="stop timing after this once --iterations are done "
                             f"{_default('max_seconds')}")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="weights and activations (default: fp32); a backend that cannot "
                             "run a float precision falls back to fp32; native is the "
                             "device's own default (OpenVINO's CPU may pick bf16); int8 and "
                             "int4 run quantized weights only on devices that declare them; "
                             "the row records what ran")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="seconds before a job is killed and recorded as a timeout "
                             + (f"(default: {timeout:g})" if timeout else
                                "(default: as hwaccel benchmark or matrix, by the kind)"))
    parser.add_argument("--memory-limit", type=float, metavar="MIB",
                        help="kill a job above this resident memory and record it as oom "
                             "(default: 80%% of the memory available at the start, on each "
                             "machine)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(default_timeout=timeout)


def scenario_from(args: argparse.Namespace, command: str) -> Any:
    """Read ``--config`` (``None`` without one), check it takes only what ``command``
    takes, and settle the one-value options on ``args`` (the command line, else the file,
    else the default): ``timeout``, ``memory_limit`` and, for the matrix, ``workers`` and
    ``executor``.

    :raises UsageError: a bad file (``FILE:LINE: KEY: ...``) or a bad option value.
    """
    from hwaccel.scenarios.expand import option
    from hwaccel.scenarios.load import load

    scenario = load(args.config) if getattr(args, "config", None) else None
    if scenario is not None:
        scenario.check_for(command)
    for name in ("timeout", "memory_limit", "workers", "executor"):
        if hasattr(args, name):
            _check_option(name, getattr(args, name))
            default = args.default_timeout if name == "timeout" else BY_NAME[name].default
            setattr(args, name, option(name, scenario, getattr(args, name), default))
    return scenario


def _check_option(flag: str, value: Any, setting: str | None = None) -> None:
    """Refuse a bad value typed for ``--FLAG`` (checked as ``setting``, default the flag's)."""
    from hwaccel.errors import UsageError

    problem = None if value is None else BY_NAME[setting or flag].problem(value)
    if problem:
        raise UsageError(f"--{flag.replace('_', '-')} {problem}")


def sweep_from(args: argparse.Namespace, scenario: Any) -> list[dict[str, Any]]:
    """The sweep's points (setting -> value), each setting from the command line, else
    the scenario, else its default; one point when nothing is a list.

    :raises UsageError: a bad option value, or ``--seq-len`` and ``--prompt-len`` that
        differ.
    """
    from hwaccel.errors import UsageError
    from hwaccel.scenarios.expand import axes, sweep

    if None not in (args.seq_len, args.prompt_len) and args.seq_len != args.prompt_len:
        raise UsageError(f"--seq-len {args.seq_len} and --prompt-len {args.prompt_len} set "
                         "the same setting; give one")
    typed = {"batch_size": args.batch_size, "seq_len": args.seq_len,
             "new_tokens": args.new_tokens, "kv_cache": args.kv_cache, "warmup": args.warmup,
             "iterations": args.iterations, "min_seconds": args.min_seconds,
             "max_seconds": args.max_seconds, "threads": args.threads,
             "precision": args.precision}
    for flag, value in typed.items():
        _check_option(flag, value)
    _check_option("prompt_len", args.prompt_len, "seq_len")
    if typed["seq_len"] is None:
        typed["seq_len"] = args.prompt_len
    return sweep(axes(scenario, typed))


def settings_of(point: dict[str, Any]) -> Any:
    """The :class:`~hwaccel.types.BenchmarkSettings` of a sweep point (batch 1 where the
    batch size is ``auto``: the estimate replaces it once each job's device is known)."""
    from hwaccel.types import BenchmarkSettings

    return BenchmarkSettings(
        batch_size=1 if point["batch_size"] == AUTO else point["batch_size"],
        seq_len=point["seq_len"], new_tokens=point["new_tokens"],
        cache_implementation=None if point["kv_cache"] == "dynamic" else point["kv_cache"],
        warmup=point["warmup"],
        min_iterations=point["iterations"], min_seconds=point["min_seconds"],
        max_seconds=point["max_seconds"], threads=point["threads"],
        precision=point["precision"])


def memory_limit_from(args: argparse.Namespace, here: bool = True) -> float | None:
    """The job memory limit in MiB: ``--memory-limit`` (or the scenario's), else
    :func:`hwaccel.running.jobs.default_memory_limit`
    (``None`` when jobs run on other machines: each then takes its own default)."""
    if args.memory_limit is not None:
        return float(args.memory_limit)
    from hwaccel.running.jobs import default_memory_limit

    return default_memory_limit() if here else None
