"""OpenVINO's precisions on MiniLM: how close the sentence embeddings stay, and how fast.

For the installed MiniLM (reference ``minilm``) on OpenVINO's CPU it runs
``hwaccel benchmark minilm --backend openvino --precision P --json`` for ``fp32``, ``native``
(the device's own precision), ``int8`` (NNCF int8_asym weights) and ``int4`` (where the
device declares it), in interleaved rounds, and prints for each what ran (the row's
precision and its weights and activations), the cosine similarity of the sentence
embeddings to PyTorch fp32 on the CPU (``details.cosine_similarity``, the lowest over the
batch), ``max_abs_diff``, the median ``p50_ms`` over the rounds and its speed-up over OpenVINO
fp32, with the highest load average any of its jobs started under (timings taken on a busy
machine say so). Goal: int8 keeps a cosine similarity >= 0.99.

    .venv/bin/python benchmarks/openvino_int8.py [--rounds 3] [--threads 2] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MODEL = "minilm"
GOAL = 0.99


def declared_precisions() -> list[str]:
    """fp32, native and int8, and int4 where OpenVINO's CPU declares it."""
    from hwaccel_openvino.detect import detect_openvino

    cpu = next(h for h in detect_openvino() if h.device == "CPU")
    return ["fp32", "native", "int8"] + (["int4"] if "int4" in cpu.capabilities else [])


def benchmark(precision: str, args: argparse.Namespace, db: Path) -> dict[str, Any]:
    """One ``hwaccel benchmark`` run of MiniLM on OpenVINO's CPU: its result record."""
    proc = subprocess.run(
        [sys.executable, "-m", "hwaccel", "benchmark", MODEL, "--backend", "openvino:CPU",
         "--precision", precision, "--threads", str(args.threads), "--batch-size",
         str(args.batch_size), "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{precision}: hwaccel benchmark failed ({proc.returncode}): "
                 f"{proc.stderr[-2000:]}")
    (result,) = json.loads(proc.stdout)["results"]
    if not result["success"]:
        sys.exit(f"{precision}: {result['error_category']}: {result['error']}")
    return result


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="OpenVINO threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=1, help="sentences per call")
    args = parser.parse_args()
    precisions = declared_precisions()
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for precision in precisions:
                runs[precision].append(benchmark(precision, args, Path(tmp) / "int8.duckdb"))
    p50 = {p: statistics.median(r["p50_ms"] for r in runs[p]) for p in precisions}
    print(f"{MODEL} on OpenVINO CPU: batch {args.batch_size}, sequence "
          f"{runs['fp32'][0]['seq_len']}, {args.threads} threads, median of {args.rounds} "
          "rounds")
    print(f"{'asked':7} {'ran':5} {'weights':48} {'activ.':6} {'cosine':>8} "
          f"{'max_abs_diff':>12} {'p50_ms':>8} {'vs fp32':>7} {'load':>5}")
    for precision in precisions:
        last = runs[precision][-1]
        details = last["details"]
        print(f"{precision:7} {last['precision']:5} {details['weights'][:48]:48} "
              f"{details['activations']:6} {details['cosine_similarity']:8.5f} "
              f"{last['max_abs_diff']:12.4g} {p50[precision]:8.3f} "
              f"{p50['fp32'] / p50[precision]:6.2f}x "
              f"{max(r['load_avg'] or 0.0 for r in runs[precision]):5.1f}")
    cosine = min(r["details"]["cosine_similarity"] for r in runs["int8"])
    print(f"int8 cosine similarity {cosine:.5f} (goal >= {GOAL}): "
          f"{'met' if cosine >= GOAL else 'not met'}")


if __name__ == "__main__":
    main()
