"""Coverage of the text pipeline: every text model type of the installed transformers, tiny.

Run: .venv/bin/python benchmarks/text_sweep.py [--limit N] [--types a,b,c]
For each model type whose TAXONOMY label is the text pipeline, builds the tiny model, runs
one forward pass, checks the output shapes the config implies, and for generative models one
greedy generation of 2 tokens. Prints one line per failure and the totals: how many types
run end to end, as a fraction of all text types.
"""

from __future__ import annotations

import argparse
import collections
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--types", default="")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from transformers.utils import logging

    logging.set_verbosity_error()
    from hwaccel import autotables
    from hwaccel.classify import classify
    from hwaccel.plugins import load
    from hwaccel.workloads import load_workload

    plugins = load()
    types = args.types.split(",") if args.types else list(autotables.load().config_types)
    outcomes: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    tried = 0
    for model_type in types:
        classification = classify(f"tiny:{model_type}", plugins).classification
        if classification.pipeline != "text":
            continue
        tried += 1
        if args.limit and tried > args.limit:
            break
        stage = "load"
        try:
            workload = load_workload(f"tiny:{model_type}", classification)
            model = workload.load_model()
            stage = "forward"
            inputs = workload.make_inputs(2, 8)
            outputs = workload.forward(model, inputs)
            stage = "shapes"
            for name, shape in workload.expected_shapes(inputs).items():
                assert tuple(outputs[name].shape) == shape, f"{name} {outputs[name].shape}"
            if workload.generative:
                stage = "generate"
                tokens = workload.generate(model, inputs, new_tokens=2)
                assert tokens.shape[1] == workload.generated_length(inputs, new_tokens=2)
            outcomes["ok"] += 1
        except Exception as exc:  # noqa: BLE001 - a sweep reports every failure and goes on
            outcomes[stage] += 1
            message = " ".join(str(exc).split())[:160]
            print(f"FAIL {model_type:<28} {stage:<9} {type(exc).__name__}: {message}")
    total = sum(outcomes.values())
    print(f"\n{outcomes['ok']}/{total} text model types ran end to end "
          f"({outcomes['ok'] / max(total, 1):.0%}) in {time.perf_counter() - start:.0f} s; "
          f"failures by stage: {dict((k, v) for k, v in outcomes.items() if k != 'ok')}")


if __name__ == "__main__":
    main()
