"""Does hwaccel's harness change what it measures? ``hwaccel benchmark`` against a bare loop.

Run: .venv/bin/python benchmarks/harness_overhead.py [--model minilm] [--rounds 3]
     [--threads 1] [--seq-len 32]

Both sides time the same model (default: the shipped MiniLM, ``BertModel``) on the CPU at
batch 1 with the same thread count, in fresh processes, interleaved round by round:

- **hwaccel**: ``hwaccel benchmark MODEL --backend cpu --json`` (the planner, the job zygote,
  the workload, its one benchmark job (timings, memory figure), the database write).
- **bare**: this file, re-run with ``--bare``: ``transformers.AutoModel.from_pretrained`` of
  the same files, ``torch.set_num_threads``, random token ids of the same shape, three
  warm-up calls under ``torch.inference_mode`` and 200 calls timed with
  ``time.perf_counter``; no hwaccel import at all.

Printed per round: both p50s and their ratio; then the median p50 of each side and the
ratio of the medians (target: within 5%). Also printed, from hwaccel's own JSON: the
benchmark job's wall time split into model loading, the calls themselves (cold + warm-up +
timed calls at their mean) and the rest, which is the per-cell process overhead beyond model
loading; and the CLI's wall time beyond its job process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BARE_CALLS = 200
BARE_WARMUP = 3


def bare(model_path: str, threads: int, seq_len: int) -> None:
    """The hand-written loop: print ``{"p50_ms": ...}``."""
    import torch
    from transformers import AutoModel

    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(model_path).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(0, model.config.vocab_size, (1, seq_len),
                                   generator=generator),
        "token_type_ids": torch.zeros(1, seq_len, dtype=torch.long),
        "attention_mask": torch.ones(1, seq_len, dtype=torch.long),
    }
    times = []
    with torch.inference_mode():
        for _ in range(BARE_WARMUP):
            model(**inputs)
        for _ in range(BARE_CALLS):
            start = time.perf_counter()
            model(**inputs)
            times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"p50_ms": statistics.median(times)}))


def model_path(spec: str) -> str:
    """The local folder of a model reference, resolved by hwaccel (offline)."""
    from hwaccel.models.resolve import resolve_model

    ref = resolve_model(spec)
    if ref.path is None:
        sys.exit(f"{spec} has no local files; the bare loop needs a folder")
    return str(ref.path)


def run_hwaccel(args: argparse.Namespace, env: dict[str, str], db: Path) -> dict:
    """One ``hwaccel benchmark`` run; returns its result and the CLI's wall time."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "hwaccel", "benchmark", args.model, "--backend", "cpu",
         "--threads", str(args.threads), "--seq-len", str(args.seq_len), "--db", str(db),
         "--json"], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"hwaccel benchmark failed: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout)["results"][0]
    return {**result, "cli_wall_s": wall}


def run_bare(args: argparse.Namespace, env: dict[str, str], path: str) -> float:
    """One bare-loop process; returns its p50 in ms."""
    proc = subprocess.run([sys.executable, __file__, "--bare", path, "--threads",
                           str(args.threads), "--seq-len", str(args.seq_len)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])["p50_ms"]


def overhead(result: dict) -> dict[str, float]:
    """Split the benchmark job's wall time into loading, calls and the rest."""
    calls_s = (result["cold_ms"] + result["mean_ms"] * (result["iterations"] + 3)) / 1000.0
    job = result["wall_time_s"]
    return {"job_s": job, "load_s": result["load_time_s"], "calls_s": calls_s,
            "overhead_s": job - result["load_time_s"] - calls_s,
            "cli_beyond_jobs_s": result["cli_wall_s"] - job}


def main() -> None:
    """Interleave the two sides for ``--rounds`` rounds and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--bare", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(args.bare, args.threads, args.seq_len)
        return
    import tempfile

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    path = model_path(args.model)
    ours, theirs, splits = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        env["HWACCEL_CACHE_DIR"] = tmp
        for round_no in range(1, args.rounds + 1):
            result = run_hwaccel(args, env, Path(tmp) / "h.duckdb")
            p50_bare = run_bare(args, env, path)
            ours.append(result["p50_ms"])
            theirs.append(p50_bare)
            splits.append(overhead(result))
            load = os.getloadavg()[0]
            print(f"round {round_no}: hwaccel p50 {result['p50_ms']:.3f} ms, bare p50 "
                  f"{p50_bare:.3f} ms, ratio {result['p50_ms'] / p50_bare:.3f} "
                  f"(load average {load:.2f})")
    mine, bare_median = statistics.median(ours), statistics.median(theirs)
    ratio = mine / bare_median
    print(f"\nmedian p50: hwaccel {mine:.3f} ms, bare {bare_median:.3f} ms, ratio {ratio:.3f} "
          f"({'within' if abs(ratio - 1) <= 0.05 else 'OUTSIDE'} the 5% target)")
    print("\nper cell, median over rounds (seconds):")
    for key in splits[0]:
        print(f"  {key:18} {statistics.median(s[key] for s in splits):7.3f}")


if __name__ == "__main__":
    main()
