"""The ``hwaccel`` command line.

Only argparse and the command modules' light imports happen at start-up: ``hwaccel --help``
and ``hwaccel list-plugins`` never import torch, transformers, openvino or onnxruntime.
Expected failures (:class:`hwaccel.errors.HwaccelError`) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from hwaccel.cli import (
    cmd_benchmark,
    cmd_classify,
    cmd_detect,
    cmd_generate,
    cmd_history,
    cmd_matrix,
    cmd_new_plugin,
    cmd_plugins,
    cmd_recommend,
    cmd_report,
    cmd_resources,
    cmd_run,
)
from hwaccel.errors import HwaccelError

COMMANDS = (cmd_plugins, cmd_detect, cmd_classify, cmd_recommend, cmd_resources, cmd_generate,
            cmd_benchmark, cmd_matrix, cmd_run, cmd_history, cmd_report, cmd_new_plugin)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other hwaccel error."""

    def error(self, message: str) -> NoReturn:
        """Print ``hwaccel: error: MESSAGE`` and exit 2."""
        self.exit(2, f"hwaccel: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with one sub-command per command module."""
    parser = OneLineParser(
        prog="hwaccel",
        description="Which hardware should this Hugging Face model run on? Detect, classify, "
                    "generate runnable tests and benchmark, measured.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--strict-plugins", action="store_true",
                        help="fail when any plugin fails to load (HWACCEL_STRICT_PLUGINS=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import importlib.metadata

        print(f"hwaccel {importlib.metadata.version('hwaccel-core')}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    if args.strict_plugins:
        os.environ["HWACCEL_STRICT_PLUGINS"] = "1"
    try:
        return int(args.handler(args) or 0)
    except HwaccelError as exc:
        print(f"hwaccel: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hwaccel: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line unless HWACCEL_DEBUG asks for more
        if os.environ.get("HWACCEL_DEBUG"):
            raise
        print(f"hwaccel: internal error: {type(exc).__name__}: {exc} "
              "(set HWACCEL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 70
