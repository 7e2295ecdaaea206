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
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--class", dest="model_class", help="the model class name, as evidence")
    parser.add_argument("--task", dest="tasks", action="append", default=[],
                        help="a task (fill-mask, text-generation, ...), as evidence; repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Classify each model; exit 2 when any reference was bad."""
    from hwaccel.classify import classify
    from hwaccel.cli.output import print_json, table, warn_errors
    from hwaccel.errors import UsageError
    from hwaccel.plugins import load

    plugins = load()
    rows, failures = [], []
    for model in args.models:
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
