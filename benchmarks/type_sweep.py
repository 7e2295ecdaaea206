"""Every labelled model type of the installed transformers, tiny, benchmarked on one backend.

Run: .venv/bin/python benchmarks/type_sweep.py --backend cpu [--sample N] [--types a,b]
                                               [--jobs 2] [--timeout 300] [--json FILE]
     .venv/bin/python benchmarks/type_sweep.py --backend openvino --against cpu.json

For each transformers ``model_type`` whose TAXONOMY label names a pipeline (the types
``hwaccel classify tiny:<type>`` gives a pipeline), the sweep benchmarks ``tiny:<type>`` on
the backend's first available device exactly as ``hwaccel benchmark`` does (a job process
per type from the zygote, the backend's own benchmark hook), with one timed call. It prints
every failure with its category (``harness`` first) and the share of types that ran, per
pipeline and in all. ``--sample N`` takes N types per pipeline (spread evenly over the
sorted list) for a quick run; ``--json FILE`` keeps every outcome. ``--against FILE``
(another sweep's ``--json``, e.g. the CPU's) sweeps only the types that ran there and prints
the share of them that run here too."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import json
import sys
import time


def _sample(types: list[str], count: int) -> list[str]:
    """``count`` types spread evenly over the sorted list (all of them when fewer)."""
    ordered = sorted(types)
    if count <= 0 or count >= len(ordered):
        return ordered
    step = len(ordered) / count
    return [ordered[int(i * step)] for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu", help="backend (or BACKEND:DEVICE)")
    parser.add_argument("--sample", type=int, default=0, help="types per pipeline (0: all)")
    parser.add_argument("--types", default="", help="comma-separated model types")
    parser.add_argument("--pipelines", default="", help="comma-separated pipelines")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at once")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per job")
    parser.add_argument("--json", default="", help="write every outcome to this file")
    parser.add_argument("--against", default="",
                        help="a sweep's --json: sweep only the types that ran there")
    args = parser.parse_args()

    from hwaccel.hardware.detection import detect
    from hwaccel.kit import autotables
    from hwaccel.kit.failures import failure
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load
    from hwaccel.running import benchmark
    from hwaccel.running.jobs import JobPool
    from hwaccel.types import BenchmarkResult, BenchmarkSettings

    plugins = load()
    report = detect(plugins)
    wanted = set(filter(None, args.types.split(",")))
    if args.against:
        with open(args.against, encoding="utf-8") as reference:
            ran = json.load(reference)["results"]
        against = {m.removeprefix("tiny:") for m, r in ran.items() if r["success"]}
        wanted = wanted & against if wanted else against
    pipelines_wanted = set(filter(None, args.pipelines.split(",")))
    by_pipeline: dict[str, list[str]] = collections.defaultdict(list)
    for model_type in autotables.load().config_types:
        if wanted and model_type not in wanted:
            continue
        pipeline = classify(f"tiny:{model_type}", plugins).classification.pipeline
        if pipeline and (not pipelines_wanted or pipeline in pipelines_wanted):
            by_pipeline[pipeline].append(model_type)
    chosen = {p: _sample(t, args.sample) for p, t in sorted(by_pipeline.items())}
    models = [f"tiny:{t}" for types in chosen.values() for t in types]
    settings = BenchmarkSettings(warmup=0, min_iterations=1, min_seconds=0.0, threads=1)
    jobs, _ = benchmark.plan(models, [args.backend], plugins, report, settings)
    print(f"{len(jobs)} model types on {args.backend}, {args.jobs} at a time", file=sys.stderr)

    def run_one(job: benchmark.Job) -> BenchmarkResult:
        if job.skip is not None:
            return job.skip
        outcome = pool.run("benchmark", job.request.to_dict(), timeout_s=args.timeout)
        if outcome.status == "ok" and outcome.result is not None:
            return BenchmarkResult.from_dict(outcome.result)
        return failure(job.request, outcome.status, outcome.message)

    results: dict[str, BenchmarkResult] = {}
    pipeline_of = {f"tiny:{t}": p for p, types in chosen.items() for t in types}
    start = time.perf_counter()
    with JobPool() as pool, concurrent.futures.ThreadPoolExecutor(args.jobs) as workers:
        futures = {workers.submit(run_one, job): job for job in jobs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            job = futures[future]
            result = future.result()
            results[job.request.model] = result
            mark = "ok  " if result.success else f"FAIL {result.error_category}"
            print(f"[{done}/{len(jobs)}] {mark} {job.request.model}", file=sys.stderr,
                  flush=True)
    elapsed = time.perf_counter() - start

    failures = [(pipeline_of[m], m, r) for m, r in results.items() if not r.success]
    order = {"harness": 0}
    failures.sort(key=lambda f: (order.get(f[2].error_category or "", 1),
                                 f[2].error_category or "", f[0], f[1]))
    print(f"\nFailures on {args.backend} ({len(failures)}):")
    for pipeline, model, result in failures:
        message = " ".join(str(result.error).split())[:220]
        print(f"  {result.error_category:<18} {pipeline:<12} {model:<34} {message}")
    version = autotables.load().transformers_version
    print(f"\nShare that ran on {args.backend} (transformers {version}):")
    total_ok = 0
    for pipeline, types in chosen.items():
        ok = sum(results[f"tiny:{t}"].success for t in types)
        total_ok += ok
        print(f"  {pipeline:<12} {ok:>4}/{len(types):<4} {ok / max(len(types), 1):6.1%}")
    if args.against:
        print(f"  (of the types that ran in {args.against})")
    categories = collections.Counter(r.error_category for _, _, r in failures)
    print(f"  {'all':<12} {total_ok:>4}/{len(results):<4} "
          f"{total_ok / max(len(results), 1):6.1%}   in {elapsed:.0f} s; failures by "
          f"category: {dict(categories.most_common())}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"backend": args.backend, "seconds": elapsed,
                       "results": {m: {"pipeline": pipeline_of[m], **dataclasses.asdict(r)}
                                   for m, r in results.items()}}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
