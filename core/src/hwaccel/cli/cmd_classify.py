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
                             "standard input)")
    parser.add_argument("--class", dest="model_class", help="the model class name, as evidence")
    parser.add_argument("--task", dest="tasks", action="append", default=[],
                        help="a task (fill-mask, text-generation, ...), as evidence; repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def read_model_list(path: str) -> list[str]:
    """Models from a file (or ``-`` for standard input): one per line, ``#`` starts a comment."""
    import sys
    from pathlib import Path

    from hwaccel.errors import UsageError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-file: no such file: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--from-file: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"--from-file: cannot read {path}: {exc.strerror}") from None
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def run(args: argparse.Namespace) -> int:
    """Classify each model; exit 2 when any reference was bad."""
    from hwaccel.classify import classify
    from hwaccel.cli.output import print_json, table, warn_errors
    from hwaccel.errors import UsageError
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
