"""The measurement options that ``hwaccel benchmark`` and ``hwaccel matrix`` share."""

from __future__ import annotations

import argparse
import math
from typing import Any

from hwaccel.types import QUANTIZED_PRECISIONS

PRECISIONS = ("fp32", "fp16", "bf16", *QUANTIZED_PRECISIONS)
"""What ``--precision`` may ask for: float formats any backend may fall back from, and the
quantized ones, which only a device that declares them among its capabilities runs."""

def add_measure_options(parser: argparse.ArgumentParser, *, timeout: float) -> None:
    """Add batch, sequence, warm-up, iteration, thread, precision, time- and memory-limit
    options."""
    parser.add_argument("--db", help="DuckDB file (default: in the user cache folder)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls after the cold one")
    parser.add_argument("--iterations", type=int, default=20, help="minimum timed calls")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed seconds")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="stop timing after this once --iterations are done")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="weights and activations; a backend that cannot run a float "
                             "precision falls back to fp32 and the row records what ran; "
                             "int8 (a quantized model) runs only on devices that declare it")
    parser.add_argument("--timeout", type=float, default=timeout,
                        help="seconds before a job is killed and recorded as a timeout")
    parser.add_argument("--memory-limit", type=float, metavar="MIB",
                        help="kill a job above this resident memory and record it as oom "
                             "(default: 80%% of the memory available at the start, on each "
                             "machine)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def memory_limit_from(args: argparse.Namespace, here: bool = True) -> float | None:
    """The job memory limit in MiB: ``--memory-limit``, else
    :func:`hwaccel.running.jobs.default_memory_limit`
    (``None`` when jobs run on other machines: each then takes its own default)."""
    from hwaccel.errors import UsageError

    if args.memory_limit is not None:
        if not (math.isfinite(args.memory_limit) and args.memory_limit > 0):
            raise UsageError(f"--memory-limit must be a positive number of MiB, not "
                             f"{args.memory_limit}")
        return float(args.memory_limit)
    from hwaccel.running.jobs import default_memory_limit

    return default_memory_limit() if here else None


def settings_from(args: argparse.Namespace) -> Any:
    """Check the options (one clear error for a bad value) and return the settings."""
    from hwaccel.errors import UsageError
    from hwaccel.types import BenchmarkSettings

    for name in ("batch_size", "seq_len", "iterations"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("min_seconds", "max_seconds", "timeout"):  # NaN passes every comparison
        if not math.isfinite(getattr(args, name)):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number of "
                             f"seconds, not {getattr(args, name)}")
    if args.warmup < 0 or args.min_seconds < 0 or args.max_seconds < 0 or args.timeout <= 0:
        raise UsageError("--warmup, --min-seconds and --max-seconds must be >= 0 and "
                         "--timeout > 0")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    return BenchmarkSettings(batch_size=args.batch_size, seq_len=args.seq_len,
                             warmup=args.warmup, min_iterations=args.iterations,
                             min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                             threads=args.threads, precision=args.precision)
