"""``hwaccel generate``: runnable pytest files for model x backend."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser("generate", help="runnable pytest files for model x backend",
                            description="Render one pytest module per (model, backend): it "
                                        "loads the model on the backend, runs inference, "
                                        "checks shapes and agreement with the CPU, and skips "
                                        "with the reason when the hardware is absent.")
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--backend", dest="backends", action="append", required=True,
                        metavar="BACKEND", help="target backend; repeatable")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Classify the models, then render and write every (model, backend) file."""
    from hwaccel.cli.output import print_json, table, warn_errors
    from hwaccel.generating.generate import GeneratedFile, file_name, render, write_test
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load

    plugins = load()
    classified = []
    for model in dict.fromkeys(args.models):  # resolve every model before writing anything
        outcome = classify(model, plugins)
        warn_errors(outcome.errors)
        classified.append((model, outcome.classification))
    # every file renders before any is written: bad input leaves the output folder untouched
    rendered = [(model, backend, classification, render(model, classification, backend, plugins))
                for model, classification in classified
                for backend in dict.fromkeys(args.backends)]
    written: list[GeneratedFile] = []
    taken: set[str] = set()
    for model, backend, classification, source in rendered:
        name = file_name(model, backend, taken)
        taken.add(name)
        path = write_test(source, args.out, name)
        written.append(GeneratedFile(model, backend, classification.pipeline or "", str(path)))
    if args.json:
        print_json([vars(f) for f in written])
    else:
        table(f"Generated tests in {args.out}", ["model", "backend", "pipeline", "file"],
              [[f.model, f.backend, f.pipeline, f.path] for f in written])
    return 0
