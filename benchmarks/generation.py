"""Greedy generation speed on a GPT-2 124M-sized model: transformers, OpenVINO with its KV
cache in a stateful graph, OpenVINO's no-cache loop, and hwaccel's own cpu and openvino rows.

The checkpoint is ``GPT2LMHeadModel(GPT2Config())`` with random weights from a fixed seed,
saved once under ``~/.cache/hwaccel-bench/gpt2-124m`` (no tokenizer: the prompt is seeded
random ids, as hwaccel builds them from the config). Batch 1, a prompt of ``--prompt-len``
tokens, exactly ``--new-tokens`` new tokens (``min_new_tokens = max_new_tokens``), threads =
physical cores. Each way is warmed up once (which converts and compiles), then timed over
``--runs`` calls; tokens/s is the new tokens over the mean call:

(a) transformers: ``model.generate(do_sample=False, ...)`` on the fp32 PyTorch model;
(b) OpenVINO fp32, stateful KV cache (``OpenVINOModel.generate``);
(c) OpenVINO fp32 without a cache (``generate(use_cache=False)``: the loop that re-runs the
    whole sequence, one static-shape graph per length). Each length converts and stores its
    own IR (about 0.5 GB here), so (c) runs ``--fallback-tokens`` new tokens, and (b) is timed
    again at that count for the ratio (b)/(c);
(c') OpenVINO fp32 without a cache at the full ``--new-tokens``: the same greedy steps
    through (b)'s graph with its state emptied before every step, so each step runs the
    whole sequence (one dynamic-shape graph instead of one per length);
(d) ``hwaccel benchmark <checkpoint> --backend cpu --backend openvino --prompt-len P
    --new-tokens N --json``: the rows' ``tokens_per_s`` and ``kv_cache``.

It prints each figure, whether the tokens of (b) and (c) equal (a)'s, the load average (the
figures of a busy machine say so), and the ratios with their goals: (b)/(c) and (b)/(c')
>= 3, (b)/(a) >= 1, hwaccel cpu / (a) within 5%.

    .venv/bin/python benchmarks/generation.py [--prompt-len 32] [--new-tokens 128] [--runs 3]
        [--fallback-tokens 8] [--skip-hwaccel]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 0
CHECKPOINT = Path("~/.cache/hwaccel-bench/gpt2-124m").expanduser()


def checkpoint() -> Path:
    """The saved random-weight GPT-2 124M checkpoint (made once, from :data:`SEED`)."""
    if not (CHECKPOINT / "config.json").is_file():
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(SEED)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(CHECKPOINT)
    return CHECKPOINT


def physical_cores() -> int:
    """The machine's physical cores (logical ones when psutil cannot tell)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def timed(generate: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Warm up once, then time ``runs`` calls: (mean seconds per call, the last tokens)."""
    tokens = generate()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        tokens = generate()
        seconds.append(time.perf_counter() - start)
    return statistics.fmean(seconds), tokens


def rerun_without_cache(wrapper: Any, model: Any, prompt: dict[str, Any],
                        new_tokens: int) -> Any:
    """Greedy decoding of exactly ``new_tokens`` tokens through the stateful graph of
    ``wrapper`` with its state emptied before every step: each step runs the whole sequence.
    """
    import torch

    from hwaccel_openvino.generation import GreedyRules
    from hwaccel_openvino.stateful import stateful_decoder

    decoder = stateful_decoder(wrapper, model)
    eos = int(model.config.eos_token_id)
    rules = GreedyRules(max_new_tokens=new_tokens, min_new_tokens=new_tokens, eos=[eos],
                        pad=eos, suppress=[], begin_suppress=[], forced_bos=None,
                        forced_eos=[])
    sequence, mask = prompt["input_ids"], prompt["attention_mask"]
    finished = torch.zeros(sequence.shape[0], dtype=torch.bool)
    for step in range(new_tokens):
        token = rules.choose(decoder.prefill(sequence, mask), step, finished)
        sequence = torch.cat([sequence, token[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return sequence


def hwaccel_rows(args: argparse.Namespace, threads: int) -> dict[str, dict[str, Any]]:
    """``hwaccel benchmark`` of the checkpoint on cpu and openvino: backend -> result row."""
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(
            [sys.executable, "-m", "hwaccel", "benchmark", str(checkpoint()),
             "--backend", "cpu", "--backend", "openvino", "--prompt-len",
             str(args.prompt_len), "--new-tokens", str(args.new_tokens), "--batch-size", "1",
             "--threads", str(threads), "--warmup", "1", "--iterations", str(args.runs),
             "--min-seconds", "0", "--db", str(Path(folder) / "bench.duckdb"), "--json"],
            capture_output=True, text=True, timeout=3600)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        sys.exit(f"hwaccel benchmark failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {row["backend"]: row for row in json.loads(proc.stdout)["results"]}


def main() -> None:
    """Measure (a) to (d) and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt-len", type=int, default=32, help="prompt tokens (32)")
    parser.add_argument("--new-tokens", type=int, default=128, help="new tokens (128)")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per way (3)")
    parser.add_argument("--fallback-tokens", type=int, default=8,
                        help="new tokens of the no-cache loop (c) and its (b) (8)")
    parser.add_argument("--skip-hwaccel", action="store_true",
                        help="leave out (d), hwaccel benchmark's own rows")
    args = parser.parse_args()

    import torch
    from transformers import GPT2LMHeadModel

    from hwaccel_openvino.convert import OpenVINOModel

    threads = physical_cores()
    torch.set_num_threads(threads)
    path = checkpoint()
    model = GPT2LMHeadModel.from_pretrained(path).eval()
    generator = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, model.config.vocab_size, (1, args.prompt_len), generator=generator)
    prompt = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def options(new_tokens: int) -> dict[str, Any]:
        return {"do_sample": False, "min_new_tokens": new_tokens,
                "max_new_tokens": new_tokens, "pad_token_id": model.config.eos_token_id}

    with tempfile.TemporaryDirectory() as cache:
        os.environ["HWACCEL_CACHE_DIR"] = cache  # (c)'s IR per length are dropped after
        print(f"gpt2-124m (random weights, seed {SEED}), batch 1, prompt {args.prompt_len}, "
              f"{threads} threads, load average before: {os.getloadavg()[0]:.2f}")
        with torch.inference_mode():
            ref_s, ref_tokens = timed(lambda: model.generate(**prompt, **options(
                args.new_tokens)), args.runs)
        wrapper = OpenVINOModel(model, model_ref=str(path), threads=threads)
        ov_s, ov_tokens = timed(lambda: wrapper.generate(**prompt, **options(
            args.new_tokens)), args.runs)
        stateful_kv = wrapper.kv_cache
        few = options(args.fallback_tokens)
        short_s, _ = timed(lambda: wrapper.generate(**prompt, **few), args.runs)
        rerun_s, rerun_tokens = timed(lambda: wrapper.generate(**prompt, **few,
                                                                use_cache=False), args.runs)
        rerun_kv = wrapper.kv_cache
        full_rerun_s, full_rerun_tokens = timed(lambda: rerun_without_cache(
            wrapper, model, prompt, args.new_tokens), args.runs)
    with torch.inference_mode():
        short_reference = model.generate(**prompt, **few)
    rate = {"a": args.new_tokens / ref_s, "b": args.new_tokens / ov_s,
            "b_few": args.fallback_tokens / short_s, "c": args.fallback_tokens / rerun_s,
            "c_full": args.new_tokens / full_rerun_s}
    print(f"(a) transformers generate      {rate['a']:8.2f} tokens/s  ({ref_s:.3f} s/call, "
          f"{args.new_tokens} new)")
    print(f"(b) OpenVINO {stateful_kv:<18}{rate['b']:8.2f} tokens/s  ({ov_s:.3f} s/call, "
          f"{args.new_tokens} new; tokens equal (a): {bool(ov_tokens.equal(ref_tokens))})")
    print(f"    OpenVINO {stateful_kv:<18}{rate['b_few']:8.2f} tokens/s  ({short_s:.3f} s/call,"
          f" {args.fallback_tokens} new)")
    print(f"(c) OpenVINO no cache          {rate['c']:8.2f} tokens/s  ({rerun_s:.3f} s/call, "
          f"{args.fallback_tokens} new; tokens equal transformers': "
          f"{bool(rerun_tokens.equal(short_reference))}; kv_cache {rerun_kv!r})")
    print(f"(c') OpenVINO no cache, 1 graph {rate['c_full']:7.2f} tokens/s  "
          f"({full_rerun_s:.3f} s/call, {args.new_tokens} new; tokens equal (a): "
          f"{bool(full_rerun_tokens.equal(ref_tokens))})")
    rows = {} if args.skip_hwaccel else hwaccel_rows(args, threads)
    for backend, row in rows.items():
        figure = row.get("tokens_per_s")
        shown = f"{figure:8.2f} tokens/s" if figure else f"failed: {row.get('error')}"
        print(f"(d) hwaccel {backend:<19}{shown}  (kv_cache {row.get('kv_cache')!r}, "
              f"precision {row.get('precision')})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"(b)/(c) at {args.fallback_tokens} new tokens: {rate['b_few'] / rate['c']:.2f} "
          "(goal >= 3)")
    print(f"(b)/(c') at {args.new_tokens} new tokens: {rate['b'] / rate['c_full']:.2f} "
          "(goal >= 3)")
    print(f"(b)/(a): {rate['b'] / rate['a']:.2f} (goal >= 1)")
    cpu = rows.get("cpu", {}).get("tokens_per_s")
    if cpu:
        print(f"hwaccel cpu / (a): {cpu / rate['a']:.3f} (goal within 5%: 0.95 to 1.05)")


if __name__ == "__main__":
    main()
