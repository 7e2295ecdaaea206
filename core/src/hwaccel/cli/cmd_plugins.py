"""``hwaccel list-plugins``: installed plugins, their hooks and load status, and executors.

Executors (``hwaccel.executors`` entry points) are listed from their entry points without
importing them, so that listing stays light (the Ray executor would import ray). The listing
is shown from the plugin index (:mod:`hwaccel.cli.plugin_index`) while nothing it depends on
has changed.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "list-plugins", help="installed plugins and their load status",
        description="List every hwaccel plugin entry point: distribution, version, kind, hooks, "
                    "status and load error; then the matrix executors installed. The listing is "
                    "kept in the cache folder (plugin-index.json) and shown from there until an "
                    "installed distribution, a .pth file or the file of a module loaded with "
                    "the plugins changes; --refresh loads the plugins again, as do "
                    "HWACCEL_STRICT_PLUGINS and HWACCEL_TRACE_PLUGINS, and a listing with a "
                    "failed or unavailable plugin is never kept.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--refresh", action="store_true",
                        help="load the plugins again instead of showing the stored listing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the plugins, from the plugin index when it is current; exit 1 when any failed to
    load."""
    from hwaccel.cli.plugin_index import PluginIndex

    index = PluginIndex.open()
    listing = index.lookup() if index is not None and not args.refresh else None
    if listing is None:
        listing = load_listing()
        if index is not None:
            index.store(listing)
    show(listing, as_json=args.json)
    return 1 if any(plugin["status"] == "failed" for plugin in listing["plugins"]) else 0


def load_listing() -> dict:
    """Load the plugins and return what ``list-plugins --json`` prints: hwaccel-core's
    version, ``sys.prefix``, a record per plugin entry point and one per executor."""
    import dataclasses
    import importlib.metadata

    from hwaccel.plugins import load
    from hwaccel.running import executors

    return {"core_version": importlib.metadata.version("hwaccel-core"), "prefix": sys.prefix,
            "plugins": [record.to_dict() for record in load().records],
            "executors": [dataclasses.asdict(entry) for entry in executors.installed()]}


def show(listing: dict, *, as_json: bool) -> None:
    """Print a listing as JSON, or as the plugins' table and the executors' table."""
    from hwaccel.cli.output import print_json, table

    if as_json:
        print_json(listing)
        return
    table(f"hwaccel {listing['core_version']} plugins ({listing['prefix']})",
          ["plugin", "distribution", "version", "kind", "hooks", "status", "error"],
          [[p["name"], p["distribution"], p["version"], p["kind"],
            ", ".join(h.removeprefix("hwaccel_") for h in p["hooks"]), p["status"], p["error"]]
           for p in listing["plugins"]])
    table("matrix executors (hwaccel matrix --executor NAME)",
          ["executor", "distribution", "version", "entry point"],
          [[e["name"], e["distribution"], e["version"], e["target"]]
           for e in listing["executors"]])
