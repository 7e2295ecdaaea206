"""How much memory hwaccel's OpenVINO benchmark holds, against OpenVINO alone.

On a bert-base-sized checkpoint (``BertModel(BertConfig())``, random weights from seed 0,
saved once under ``~/.cache/hwaccel-bench/bert-base``) it measures, in one run:

1. ``hwaccel benchmark <folder> --backend openvino --json`` twice, in a cache folder of its
   own: the first run converts the model and caches the IR, the second reads it. The
   ``peak_rss_mb`` the second records is reported (the job process's kernel high-water
   mark; the benchmark measures it after the timed calls, before loading the CPU reference
   copy), with whether its IR came from the cache (``details.ir_cached``) and its
   high-water mark once loaded (``details.load_peak_rss_mb``).
2. The floor: the peak RSS (``VmHWM``) of a fresh Python process that imports only openvino
   and numpy, reads that same cached IR, compiles it for the same shapes and compile
   properties (fp32, latency hint, the same thread count) and makes one call.
3. The same process importing torch and transformers first, as any process that runs a
   workload does (its inputs and outputs are torch tensors): what the libraries alone add.

It prints the figures and hwaccel's ratio to each floor; the goal is hwaccel within 1.15x of
the floor (2).

    .venv/bin/python benchmarks/openvino_memory.py [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_HOME = Path.home() / ".cache" / "hwaccel-bench"
GOAL = 1.15

# One fresh process: read the IR, fix the call's shapes, compile, one call; print VmHWM.
FLOOR = """
import importlib, json, sys
import numpy as np
import openvino

xml, inputs, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
for module in sys.argv[4:]:
    importlib.import_module(module)
core = openvino.Core()
model = core.read_model(xml)
model.reshape({name: shape for name, _, shape in inputs})
compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                             "INFERENCE_PRECISION_HINT": "f32",
                                             "INFERENCE_NUM_THREADS": threads})
del model
compiled.create_infer_request().infer([np.ones(shape, dtype) for _, dtype, shape in inputs])
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")))
"""


def save_checkpoint(folder: Path) -> Path:
    """``BertModel(BertConfig())`` with seed-0 weights saved in ``folder``, once."""
    if not (folder / "config.json").is_file():
        import torch
        from transformers import BertConfig, BertModel

        print(f"saving bert-base (random weights, seed 0) to {folder}", flush=True)
        torch.manual_seed(0)
        model = BertModel(BertConfig())
        model.config.architectures = ["BertModel"]
        model.save_pretrained(folder)
    return folder


def hwaccel_benchmark(folder: Path, env: dict[str, str], threads: int) -> dict[str, Any]:
    """One ``hwaccel benchmark --backend openvino --json`` run: its result record."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "hwaccel", "benchmark", str(folder), "--backend",
             "openvino", "--iterations", "5", "--min-seconds", "0", "--threads", str(threads),
             "--db", str(Path(tmp) / "bench.duckdb"), "--json"],
            capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"hwaccel benchmark failed ({proc.returncode}): {proc.stderr[-2000:]}")
    (result,) = json.loads(proc.stdout)["results"]
    return result


def cached_ir(cache: Path, folder: Path) -> tuple[Path, list[list[Any]]]:
    """The float IR hwaccel cached for ``folder`` and its call's inputs (name, dtype, shape)."""
    for spec_file in (cache / "openvino").glob("*/spec.json"):
        parts = json.loads(spec_file.read_text())["parts"]
        if parts["model"] == str(folder) and "weights_compression" not in parts:
            return spec_file.parent / "model.xml", parts["inputs"]
    sys.exit(f"no cached IR for {folder} under {cache}")


def floor_peak_mb(xml: Path, inputs: list[list[Any]], threads: int,
                  imports: tuple[str, ...] = ()) -> float:
    """VmHWM (MiB) of a fresh process that imports ``imports``, reads ``xml``, compiles it and
    calls it once."""
    proc = subprocess.run([sys.executable, "-c", FLOOR, str(xml), json.dumps(inputs),
                           str(threads), *imports], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


def main() -> None:
    """Measure and print both peaks and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="OpenVINO threads (default 2)")
    args = parser.parse_args()
    folder = save_checkpoint(BENCH_HOME / "bert-base")
    cache = Path(tempfile.mkdtemp(prefix="openvino-memory-"))
    env = {**os.environ, "HWACCEL_CACHE_DIR": str(cache)}
    first = hwaccel_benchmark(folder, env, args.threads)
    second = hwaccel_benchmark(folder, env, args.threads)
    xml, inputs = cached_ir(cache, folder)
    floor = floor_peak_mb(xml, inputs, args.threads)
    with_torch = floor_peak_mb(xml, inputs, args.threads, ("torch", "transformers"))
    details = second["details"]
    print(f"model: {folder} (BertModel, bert-base config), batch {second['batch_size']}, "
          f"sequence {second['seq_len']}, {args.threads} threads, {second['precision']}")
    print(f"hwaccel, first run (converts):         peak_rss_mb {first['peak_rss_mb']:8.1f} "
          f"MiB  (IR cached: {first['details'].get('ir_cached')})")
    print(f"hwaccel, second run:                   peak_rss_mb {second['peak_rss_mb']:8.1f} "
          f"MiB  (IR cached: {details.get('ir_cached')}; once loaded: "
          f"{details.get('load_peak_rss_mb', float('nan')):.1f} MiB; before loading: "
          f"{second['baseline_rss_mb']:.1f} MiB)")
    print(f"openvino alone (read IR, compile, 1 call):      VmHWM {floor:8.1f} MiB")
    print(f"the same after importing torch, transformers:  VmHWM {with_torch:8.1f} MiB")
    ratio = second["peak_rss_mb"] / floor
    print(f"ratio to openvino alone: {ratio:.2f}x (goal <= {GOAL}x): "
          f"{'met' if ratio <= GOAL else 'not met'}")
    print(f"ratio to openvino with torch and transformers imported: "
          f"{second['peak_rss_mb'] / with_torch:.2f}x")


if __name__ == "__main__":
    main()
