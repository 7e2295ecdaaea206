"""``hwaccel list-plugins``: installed plugins, their hooks and load status."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser("list-plugins", help="installed plugins and their load status",
                            description="List every hwaccel plugin entry point: distribution, "
                                        "version, kind, hooks, status and load error.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the plugins; exit 1 when any failed to load."""
    import importlib.metadata

    from hwaccel.cli.output import print_json, table
    from hwaccel.plugins import load

    plugins = load()
    records = plugins.records
    if args.json:
        print_json({"core_version": importlib.metadata.version("hwaccel-core"),
                    "prefix": sys.prefix, "plugins": [r.to_dict() for r in records]})
    else:
        table(f"hwaccel {importlib.metadata.version('hwaccel-core')} plugins ({sys.prefix})",
              ["plugin", "distribution", "version", "kind", "hooks", "status", "error"],
              [[r.name, r.distribution, r.version, r.kind,
                ", ".join(h.removeprefix("hwaccel_") for h in r.hooks), r.status, r.error]
               for r in records])
    return 1 if any(r.status == "failed" for r in records) else 0
