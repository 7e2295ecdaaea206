"""``hwaccel recommend``: the best device for a model, or models for a task, with reasons."""

from __future__ import annotations

import argparse
from typing import Any

from hwaccel.cli.estimate_options import add_estimate_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "recommend", help="best hardware for a model, or models for a task, with the reasons",
        description="Rank the detected devices for each MODEL: by the model's measured latency "
                    "in the history when there is one, else by device priority; a device "
                    "whose backend cannot run the model or whose free memory is below the "
                    "estimate is rejected with the reason. With --task, recommend models for "
                    "the task from the local Hugging Face cache and the pipelines' catalogues.")
    parser.add_argument("models", nargs="*", metavar="MODEL")
    parser.add_argument("--task", help="recommend models for this task (text-generation, "
                                       "fill-mask, image-classification, ...)")
    add_estimate_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Recommend; exit 2 for bad input, 1 when no device can run a model (or, for a task,
    none of its models)."""
    from hwaccel.cli.estimate_options import estimator_from
    from hwaccel.errors import UsageError

    if bool(args.models) == bool(args.task):
        raise UsageError("name a MODEL (or several), or --task TASK, not both")
    estimator = estimator_from(args)
    backends = estimator.report.check_backends(args.backends) if args.backends else None
    if args.task:
        return _task(args, estimator, backends)
    from hwaccel.estimates.recommend import recommend_devices

    recommendations = [recommend_devices(m, estimator, backends=backends,
                                         batch_size=args.batch_size, seq_len=args.seq_len,
                                         precision=args.precision)
                       for m in dict.fromkeys(args.models)]
    if args.json:
        from hwaccel.cli.output import print_json

        print_json([r.to_dict() for r in recommendations])
    else:
        for recommendation in recommendations:
            _print(recommendation)
    return 0 if all(r.best for r in recommendations) else 1


def _print(rec: Any) -> None:
    from hwaccel.cli.estimate_options import mb
    from hwaccel.cli.output import console, table

    best = rec.best
    head = (f"[bold]{rec.model}[/bold] ({rec.classification.family}, pipeline "
            f"{rec.classification.pipeline or '-'}): ")
    if best:
        device = best.device if best.torch_device == best.device else \
            f"{best.device} ({best.torch_device})"
        head += f"run it on [bold]{device}[/bold]: {best.reason}"
    else:
        head += "no detected device can run it"
    console.print(head, highlight=False, soft_wrap=True)
    if rec.ranked:
        table("Ranked devices", ["rank", "device", "torch device", "p50 ms", "peak MiB",
                                 "source", "reason"],
              [[i, c.device, c.torch_device,
                f"{c.p50_ms:,.3f}" if c.p50_ms is not None else None,
                mb(c.estimate.peak_mb) if c.estimate else None,
                c.estimate.source if c.estimate else None, c.reason]
               for i, c in enumerate(rec.ranked, 1)])
    if rec.rejected:
        table("Not recommended", ["device", "reason"],
              [[r.device, r.reason] for r in rec.rejected])
    for note in rec.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def _task(args: argparse.Namespace, estimator: Any, backends: list[str] | None) -> int:
    from hwaccel.cli.estimate_options import mb
    from hwaccel.cli.output import print_json, table
    from hwaccel.estimates.recommend import recommend_models

    found = recommend_models(args.task, estimator, backends=backends,
                             batch_size=args.batch_size, seq_len=args.seq_len)
    if args.json:
        print_json({"task": args.task, "hardware_constraints": backends or [],
                    "recommendations": [{"source": source, **rec.to_dict()}
                                        for source, rec in found]})
        return 0 if any(rec.best for _, rec in found) else 1
    table(f"Models for {args.task}",
          ["rank", "model", "found in", "family", "device", "peak MiB", "reason"],
          [[i, rec.model, source, rec.classification.family,
            rec.best.device if rec.best else None,
            mb(rec.best.estimate.peak_mb) if rec.best and rec.best.estimate else None,
            rec.best.reason if rec.best else "; ".join(f"{r.device}: {r.reason}"
                                                       for r in rec.rejected)]
           for i, (source, rec) in enumerate(found, 1)])
    return 0 if any(rec.best for _, rec in found) else 1
