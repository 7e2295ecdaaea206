"""``hwaccel detect``: the hardware present, with capabilities and memory."""

from __future__ import annotations

import argparse
import uuid


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser("detect", help="hardware present, with capabilities and memory",
                            description="Detect every backend's devices. The result is "
                                        "cached for an hour and detected again sooner when "
                                        "the installed distributions or a *_VISIBLE_DEVICES "
                                        "variable change (--refresh: now); free host memory "
                                        "is read live. Fresh detections are kept in the "
                                        "database.")
    parser.add_argument("--refresh", action="store_true", help="ignore the cache")
    parser.add_argument("--db", help="DuckDB file (default: in the user cache folder)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Detect, record fresh detections, and print them."""
    from hwaccel.cli.output import mib, print_json, table, warn_errors
    from hwaccel.hardware.detection import detect
    from hwaccel.history.store import Store
    from hwaccel.kit.paths import default_db_path
    from hwaccel.plugins import load

    report = detect(load(), refresh=args.refresh)
    if not report.cached:
        with Store(args.db or default_db_path()) as store:
            store.insert_detection(report.hardware, uuid.uuid4().hex)
    warn_errors(report.errors)
    if args.json:
        print_json(report.to_dict())
        return 0
    source = "cached" if report.cached else "detected"
    table(f"Hardware ({source} {report.timestamp})",
          ["backend", "device", "name", "available", "memory", "free", "capabilities",
           "reason"],
          [[h.backend, h.device, h.name, "yes" if h.available else "no",
            mib(h.memory_total_bytes), mib(h.memory_available_bytes),
            " ".join(h.capabilities), h.reason] for h in report.hardware])
    return 0
