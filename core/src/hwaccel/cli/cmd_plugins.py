"""``hwaccel list-plugins``: installed plugins, their hooks and load status, and executors.

Executors (``hwaccel.executors`` entry points) are listed from their entry points without
importing them, so that listing stays light (the Ray executor would import ray).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser("list-plugins", help="installed plugins and their load status",
                            description="List every hwaccel plugin entry point: distribution, "
                                        "version, kind, hooks, status and load error; then "
                                        "the matrix executors installed.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the plugins; exit 1 when any failed to load."""
    import dataclasses
    import importlib.metadata

    from hwaccel.cli.output import print_json, table
    from hwaccel.plugins import load
    from hwaccel.running import executors

    plugins = load()
    records = plugins.records
    found = executors.installed()
    if args.json:
        print_json({"core_version": importlib.metadata.version("hwaccel-core"),
                    "prefix": sys.prefix, "plugins": [r.to_dict() for r in records],
                    "executors": [dataclasses.asdict(e) for e in found]})
    else:
        table(f"hwaccel {importlib.metadata.version('hwaccel-core')} plugins ({sys.prefix})",
              ["plugin", "distribution", "version", "kind", "hooks", "status", "error"],
              [[r.name, r.distribution, r.version, r.kind,
                ", ".join(h.removeprefix("hwaccel_") for h in r.hooks), r.status, r.error]
               for r in records])
        table("matrix executors (hwaccel matrix --executor NAME)",
              ["executor", "distribution", "version", "entry point"],
              [[e.name, e.distribution, e.version, e.target] for e in found])
    return 1 if any(r.status == "failed" for r in records) else 0
