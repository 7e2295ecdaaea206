"""The ``hwaccel`` command line.

Only argparse and the command modules' light imports happen at start-up: ``hwaccel --help``
and ``hwaccel list-plugins`` never import torch, transformers, openvino or onnxruntime. A
command imports only its own module (:data:`COMMANDS`); ``hwaccel --help``, no command or an
unknown one build the whole parser.
Expected failures (:class:`hwaccel.errors.HwaccelError`) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from hwaccel.errors import HwaccelError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

COMMANDS = {"list-plugins": "cmd_plugins", "detect": "cmd_detect", "classify": "cmd_classify",
            "recommend": "cmd_recommend", "resources": "cmd_resources",
            "generate": "cmd_generate", "benchmark": "cmd_benchmark", "matrix": "cmd_matrix",
            "run": "cmd_run", "history": "cmd_history", "query": "cmd_history",
            "report": "cmd_report", "new-plugin": "cmd_new_plugin"}
"""Each command, in the order ``--help`` lists them, and the module of ``hwaccel.cli`` whose
``add_parser`` registers it."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other hwaccel error."""

    def error(self, message: str) -> NoReturn:
        """Print ``hwaccel: error: MESSAGE`` and exit 2."""
        self.exit(2, f"hwaccel: error: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the parser with every command, or only the commands of ``command``'s module
    (importing no other command module) when it names one."""
    parser = OneLineParser(
        prog="hwaccel",
        description="Which hardware should this Hugging Face model run on? Detect, classify, "
                    "generate runnable tests and benchmark, measured.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--strict-plugins", action="store_true",
                        help="fail when any plugin fails to load (HWACCEL_STRICT_PLUGINS=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module in modules:
        importlib.import_module(f"hwaccel.cli.{module}").add_parser(sub)
    if command in COMMANDS and command not in sub.choices:  # COMMANDS names the wrong module
        return build_parser()
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (hwaccel's own
    options take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_of(argv))
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
