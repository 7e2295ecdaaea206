"""``hwaccel run SCENARIO``: run a scenario file's sweep, stored with the file's text.

A scenario of kind ``benchmark`` (the default) runs as ``hwaccel benchmark --config
SCENARIO`` does, a scenario of kind ``matrix`` as ``hwaccel matrix --config SCENARIO``; the
measurement options given here win over the file's values, as there.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from hwaccel.cli.measure_options import add_measure_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "run", help="run a scenario file (YAML): a sweep of benchmarks, stored with the file",
        description="Read and check SCENARIO (docs/scenarios.md), then measure every "
                    "combination of its settings on its models and backends: as benchmark "
                    "jobs, or as a matrix when it says 'kind: matrix'. The run keeps the "
                    "file's text and path in the history (hwaccel history). An option given "
                    "here wins over the file's value for that setting.")
    parser.add_argument("config", metavar="SCENARIO", help="the scenario file (YAML)")
    add_measure_options(parser, timeout=None, config=False, auto_batch=True)
    parser.set_defaults(handler=run)


KINDS = {"benchmark": "cmd_benchmark", "matrix": "cmd_matrix"}
"""The module of ``hwaccel.cli`` whose command each kind of scenario runs as."""


def _command(kind: str) -> Any:
    return importlib.import_module(f"hwaccel.cli.{KINDS[kind]}")


def run(args: argparse.Namespace) -> int:
    """Run the scenario as its kind's command would with ``--config``; return its exit
    status."""
    from hwaccel.errors import UsageError
    from hwaccel.scenarios.load import load

    kind = load(args.config).kind
    if kind != "benchmark" and args.batch_size == "auto":
        raise UsageError(f"--batch-size auto is for a scenario of kind benchmark, not {kind}")
    return _command(kind).run(_as(kind, args))


def _as(kind: str, args: argparse.Namespace) -> argparse.Namespace:
    """``args`` as the ``kind`` command's parser would give them with ``--config``: its
    defaults for the options ``run`` does not have (``--resume``, ``--workers`` ...),
    ``run``'s values for the others."""
    parser = argparse.ArgumentParser(add_help=False)
    _command(kind).add_parser(parser.add_subparsers())
    defaults = parser.parse_args([kind])
    return argparse.Namespace(**{**vars(defaults), **vars(args),
                                 "default_timeout": defaults.default_timeout})
