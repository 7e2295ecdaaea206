"""What ``hwaccel resources`` and ``hwaccel recommend`` share: options, the estimator, progress."""

from __future__ import annotations

import argparse
from typing import Any


def add_estimate_options(parser: argparse.ArgumentParser) -> None:
    """Add the backend filter, call settings, history database and measuring options."""
    parser.add_argument("--backend", "--hw", dest="backends", action="extend", nargs="+",
                        metavar="BACKEND", help="only these backends (default: every detected "
                                                "one); repeatable")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                        help="what to ask for; a device that cannot run it is estimated at "
                             "what it runs instead")
    parser.add_argument("--db", help="DuckDB history (default: in the user cache folder)")
    parser.add_argument("--no-measure", dest="measure", action="store_false",
                        help="never run jobs to measure a device's runtime baseline; use only "
                             "the history and the cache")
    parser.add_argument("--json", action="store_true", help="print JSON")


def estimator_from(args: argparse.Namespace) -> Any:
    """Check the options and return an estimator over the detected hardware and history."""
    from pathlib import Path

    from hwaccel.cli.output import err_console
    from hwaccel.errors import UsageError
    from hwaccel.estimates.resources import Estimator
    from hwaccel.hardware.detection import detect
    from hwaccel.kit.paths import default_db_path
    from hwaccel.plugins import load

    if args.batch_size < 1 or args.seq_len < 1:
        raise UsageError("--batch-size and --seq-len must be at least 1")
    plugins = load()
    report = detect(plugins)

    def progress(model: str, device: str) -> None:
        err_console.print(f"measuring the runtime baseline of {device} with {model} "
                          "(once; kept in the cache)", highlight=False, soft_wrap=True)

    return Estimator(plugins, report, db_path=Path(args.db) if args.db else default_db_path(),
                     measure=args.measure, on_measure=None if args.json else progress)


def mb(value: float | None) -> str | None:
    """MiB with no decimals, or ``None``."""
    return None if value is None else f"{value:,.0f}"
