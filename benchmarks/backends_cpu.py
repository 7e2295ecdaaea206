"""PyTorch eager vs OpenVINO (CPU) vs ONNX Runtime (CPU EP) on a BERT-base-sized model.

Run: .venv/bin/python benchmarks/backends_cpu.py [--threads N] [--rounds R] [--workdir DIR]

The model is a ``BertModel`` from a config (hidden 768, 12 layers, 12 heads, intermediate
3072, vocabulary 30522) with random weights from a fixed seed, at batch 1 and sequence 128.

1. A preparation process builds the model, saves it (safetensors), saves the inputs and the
   model's fp32 output, exports ONNX (``torch.onnx.export``) and converts it to OpenVINO IR
   (``openvino.convert_model`` on the torch model, weights kept in fp32). Exporting inside a
   measuring process inflates its peak memory, so it is done here, once.
2. Each runtime is measured in its own fresh process, which imports only that runtime:
   ``torch`` loads the saved model (``from_pretrained``), ``openvino`` reads and compiles the
   IR for its ``CPU`` device, ``onnxruntime`` opens the ONNX file with the CPU execution
   provider. Each uses the method of ``hwaccel benchmark``: one cold call, then
   ``hwaccel.kit.measure.time_calls`` with the default ``BenchmarkSettings`` (3 warm-up calls, at
   least 20 timed calls and 1 s) and ``summarize`` for p50/p90/p99 and the coefficient of
   variation.
3. Every runtime gets the same thread count (default: the physical cores, as the CPU
   backend uses): ``torch.set_num_threads``, ORT ``intra_op_num_threads`` (inter-op 1,
   sequential), OpenVINO ``INFERENCE_NUM_THREADS`` with one stream, the latency hint and
   f32 inference precision; ``OMP_NUM_THREADS`` is set to it in every process as well.

Printed per runtime: load time, p50/p90/p99, cv, the p50 ratio against torch eager, the
peak RSS (the process's ``VmHWM``, imports included) and the RSS after imports, the largest
absolute difference from torch's output, and the 1-minute load average when it started.
``--rounds R`` repeats the three processes R times, interleaved, and prints every round
and the median p50 of each runtime.

optimum-intel's ``OVModelForFeatureExtraction`` is not compared: optimum-intel 2.2.0 (the
registry's newest) requires ``transformers<5.6`` and ``torchvision``, so installing it would
downgrade transformers 5.23 to 5.5.4 and replace the CPU torch 2.13.0 with a CUDA torch
2.14.1 and its NVIDIA libraries (``pip install --dry-run optimum-intel``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNTIMES = ("torch", "openvino", "onnxruntime")
CONFIG = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
          "intermediate_size": 3072, "vocab_size": 30522}
SEED = 0
BATCH, SEQ = 1, 128
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def prepare(workdir: Path) -> dict:
    """Build, save, export and convert the model into ``workdir``; return the step times."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    times = {}
    start = time.perf_counter()
    torch.manual_seed(SEED)
    model = BertModel(BertConfig(**CONFIG)).eval()
    model.save_pretrained(workdir / "torch", safe_serialization=True)
    generator = torch.Generator().manual_seed(SEED)
    inputs = {
        "input_ids": torch.randint(0, CONFIG["vocab_size"], (BATCH, SEQ), generator=generator),
        "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long),
        "token_type_ids": torch.zeros(BATCH, SEQ, dtype=torch.long),
    }
    np.savez(workdir / "inputs.npz", **{k: v.numpy() for k, v in inputs.items()})
    with torch.inference_mode():
        reference = model(**inputs).last_hidden_state
    np.save(workdir / "reference.npy", reference.numpy())
    times["build_and_save_s"] = time.perf_counter() - start

    class Named(torch.nn.Module):
        """Named parameters: the TorchScript exporter passes kwargs positionally, which
        collides with BertModel.forward's own argument order under transformers 5."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids)
            return out.last_hidden_state, out.pooler_output

    start = time.perf_counter()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    torch.onnx.export(Named(model).eval(), tuple(inputs[n] for n in INPUT_NAMES),
                      str(workdir / "model.onnx"), input_names=list(INPUT_NAMES),
                      output_names=["last_hidden_state", "pooler_output"],
                      dynamic_axes={**dynamic, "last_hidden_state": {0: "batch", 1: "sequence"}},
                      opset_version=17, dynamo=False)
    times["onnx_export_s"] = time.perf_counter() - start

    import openvino as ov

    start = time.perf_counter()
    ov_model = ov.convert_model(model, example_input=dict(inputs))
    ov.save_model(ov_model, workdir / "model.xml", compress_to_fp16=False)
    times["openvino_convert_s"] = time.perf_counter() - start
    return times


def _set_torch(threads: int):
    import numpy as np
    import torch
    from transformers import BertModel

    torch.set_num_threads(threads)
    return np, torch, BertModel


def measure(runtime: str, workdir: Path, threads: int) -> dict:
    """Measure one runtime in this process and return its figures."""
    load_avg = os.getloadavg()[0]
    if runtime == "torch":
        np, torch, bert_model = _set_torch(threads)
    elif runtime == "openvino":
        import numpy as np
        import openvino as ov
    else:
        import numpy as np
        import onnxruntime as ort
    from hwaccel.kit.measure import process_memory_mb, summarize, time_calls
    from hwaccel.types import BenchmarkSettings

    settings = BenchmarkSettings(batch_size=BATCH, seq_len=SEQ, threads=threads)
    feeds = dict(np.load(workdir / "inputs.npz"))
    after_imports = process_memory_mb("VmRSS")
    start = time.perf_counter()
    if runtime == "torch":
        model = bert_model.from_pretrained(workdir / "torch").eval()
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

        def call():
            with torch.inference_mode():
                return model(**tensors).last_hidden_state.numpy()
    elif runtime == "openvino":
        core = ov.Core()
        compiled = core.compile_model(core.read_model(workdir / "model.xml"), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        names = {port.get_any_name() for port in compiled.inputs}
        ov_feeds = {k: v for k, v in feeds.items() if k in names}

        def call():
            request.infer(ov_feeds)
            return request.get_output_tensor(0).data.copy()
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(workdir / "model.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        ort_feeds = {k: v for k, v in feeds.items() if k in names}

        def call():
            return session.run(["last_hidden_state"], ort_feeds)[0]
    load_time = time.perf_counter() - start
    timing = time_calls(call, warmup=settings.warmup, min_iterations=settings.min_iterations,
                        min_seconds=settings.min_seconds, max_seconds=settings.max_seconds)
    reference = np.load(workdir / "reference.npy")
    output = np.asarray(timing.last_output)
    assert output.shape == reference.shape, (output.shape, reference.shape)
    return {"runtime": runtime, "threads": threads, "load_avg": load_avg,
            "load_time_s": load_time, "cold_ms": timing.cold_ms,
            "iterations": len(timing.times_ms), **summarize(timing.times_ms, BATCH),
            "max_abs_diff": float(np.abs(output - reference).max()),
            "rss_after_imports_mb": after_imports,
            "peak_rss_mb": process_memory_mb("VmHWM")}


def _child(args: list[str], threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(r: dict, torch_p50: float | None) -> str:
    ratio = f"{r['p50_ms'] / torch_p50:.2f}x" if torch_p50 else "-"
    return (f"{r['runtime']:<12} {r['load_time_s']:6.2f} {r['p50_ms']:8.1f} {r['p90_ms']:8.1f} "
            f"{r['p99_ms']:8.1f} {r['cv']:5.2f} {ratio:>7} {r['peak_rss_mb']:8.0f} "
            f"{r['rss_after_imports_mb']:8.0f} {r['max_abs_diff']:9.1e} {r['iterations']:5d} "
            f"{r['load_avg']:5.2f}")


HEADER = (f"{'runtime':<12} {'load s':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'cv':>5} {'vs torch':>7} {'peak MB':>8} {'base MB':>8} {'max diff':>9} "
          f"{'iters':>5} {'load':>5}")


def main() -> None:
    """Prepare once, then measure each runtime in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every runtime (default: physical cores)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the prepared model here (default: a temporary folder)")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(prepare(args.prepare)))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.workdir, args.threads)))
        return
    import psutil

    threads = args.threads or psutil.cpu_count(logical=False) or 1
    with tempfile.TemporaryDirectory(prefix="hwaccel-backends-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if not (workdir / "model.xml").is_file():
            steps = _child(["--prepare", str(workdir)], threads)
            print("prepared (separate process): " + ", ".join(
                f"{k} {v:.1f}" for k, v in steps.items()))
        print(f"BertModel hidden 768 x 12 layers, batch {BATCH}, seq {SEQ}, fp32, "
              f"{threads} thread(s) for every runtime, {os.cpu_count()} logical CPU(s)")
        rounds: list[dict[str, dict]] = []
        for number in range(1, args.rounds + 1):
            results = {rt: _child(["--measure", rt, "--workdir", str(workdir),
                                   "--threads", str(threads)], threads) for rt in RUNTIMES}
            rounds.append(results)
            print(f"\nround {number}\n{HEADER}")
            for result in results.values():
                print(_row(result, results["torch"]["p50_ms"]))
        if args.rounds > 1:
            medians = {rt: statistics.median(r[rt]["p50_ms"] for r in rounds) for rt in RUNTIMES}
            print("\nmedian p50 over rounds: " + ", ".join(
                f"{rt} {p50:.1f} ms ({p50 / medians['torch']:.2f}x torch)"
                for rt, p50 in medians.items()))


if __name__ == "__main__":
    main()
