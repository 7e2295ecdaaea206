"""``hwaccel classify``: family, subfamily, pipeline, confidence and the deciding signal."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser("classify", help="family, subfamily and pipeline of models",
                            description="Classify models by the TAXONOMY labels. MODEL is "
                                        "tiny:<model_type>, a folder with config.json, a hub "
                                        "id (from the local cache, else by name) or an alias "
                                        "such as minilm.")
    parser.add_argument("models", nargs="*", metavar="MODEL")
    parser.add_argument("--from-file", dest="from_file", metavar="FILE",
                        help="read more models from FILE, one per line ('#' comments; '-' is "
                             "standard input; a regular file of at most 1 MiB)")
    parser.add_argument("--class", dest="model_class", help="the model class name, as evidence")
    parser.add_argument("--task", dest="tasks", action="append", default=[],
                        help="a task (fill-mask, text-generation, ...), as evidence; repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


MAX_LIST_BYTES = 2**20
"""Largest model list read by ``--from-file`` (tens of thousands of references)."""


def read_model_list(path: str) -> list[str]:
    """Models from a file (or ``-`` for standard input): one per line (``\\n`` or ``\\r\\n``
    ends a line, no other separator does), ``#`` starts a comment.

    Only a regular file (or standard input) of at most :data:`MAX_LIST_BYTES` is read, so a
    FIFO or a device never blocks; a line that cannot be a reference (a control character,
    a Unicode line separator, longer than a reference may be) refuses the whole list, and
    the error names its line, never its content.
    """
    import os
    import stat
    import sys

    from hwaccel.errors import UsageError
    from hwaccel.models.resolve import MAX_REFERENCE_CHARS

    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_LIST_BYTES + 1)
        else:
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise UsageError(f"--from-file: {path} is not a regular file")
            with open(path, "rb") as handle:
                raw = handle.read(MAX_LIST_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-file: no such file: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--from-file: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"--from-file: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_LIST_BYTES:
        raise UsageError(f"--from-file: {path} is larger than {MAX_LIST_BYTES // 2**20} MiB: "
                         "not a model list")
    models = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r").split("#", 1)[0].strip(" \t")
        bad = next((char for char in line if not char.isprintable()), None)
        if bad is not None or len(line) > MAX_REFERENCE_CHARS:
            why = (f"it holds the non-printable character U+{ord(bad):04X}" if bad is not None
                   else f"it is longer than {MAX_REFERENCE_CHARS:,} characters")
            raise UsageError(f"--from-file: {path} is not a model list: line {number} is not "
                             f"a model reference ({why})")
        if line:
            models.append(line)
    return models


def run(args: argparse.Namespace) -> int:
    """Classify each model; exit 2 when any reference was bad."""
    from hwaccel.cli.output import print_json, table, warn_errors
    from hwaccel.errors import UsageError
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load

    models = list(args.models)
    if args.from_file:
        models += read_model_list(args.from_file)
    if not models:
        raise UsageError("no models given: name them, or use --from-file FILE")
    plugins = load()
    rows, failures = [], []
    for model in models:
        try:
            outcome = classify(model, plugins, model_class=args.model_class,
                               tasks=tuple(args.tasks))
        except UsageError as exc:
            failures.append({"model": model, "error": str(exc)})
            continue
        warn_errors(outcome.errors)
        rows.append(outcome.classification)
    if args.json:
        print_json([c.to_dict() for c in rows] + failures)
    else:
        if rows:
            table("Classification",
                  ["model", "family", "subfamily", "pipeline", "architecture", "model type",
                   "confidence", "signal", "reason"],
                  [[c.model, c.family, c.subfamily, c.pipeline, c.architecture, c.model_type,
                    f"{c.confidence:.2f}", c.signal, c.reason] for c in rows])
    if failures:
        import sys

        for failure in failures:
            print(f"hwaccel: error: {failure['error']}", file=sys.stderr)
        return 2
    return 0
