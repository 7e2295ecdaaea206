"""How close hwaccel's memory estimates come to the measured peak, model by model.

For a zoo of models across the nine pipelines (tiny ones, and full-size configs with random
weights saved as real checkpoints: bert-base, gpt2, vit-base, whisper-tiny, clip-base,
t5-small, mamba-130m, plus the shipped MiniLM) and every backend present, it

1. estimates the inference peak with :class:`hwaccel.estimates.resources.Estimator` (a fresh cache
and
   an empty history, so the runtime baselines are measured in this run and no measured peak
   of the model itself can stand in for the estimate);
2. measures the peak in a separate process, exactly as ``hwaccel benchmark`` does (one job of
   one timed call; the kernel's high-water mark of that process before any reference copy,
   plus those of the processes its backend starts beside it: the web backend's browser);
3. prints the error of each, and beside it the weights-only figure that
   ``accelerate estimate-memory`` gives (``accelerate.utils.calculate_maximum_sizes`` of the
   model built on the meta device, fp32) against the same measurement.

The models whose own measurements calibrate the estimator (the pipelines' example models)
are marked and left out of the median and the worst case; target: median absolute error
<= 10%, worst <= 25%.

    .venv/bin/python benchmarks/memory_estimate.py [--backends cpu openvino] [--models M...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TINY = ["tiny:bert", "tiny:t5", "tiny:resnet", "tiny:siglip", "tiny:wav2vec2", "tiny:paligemma",
        "tiny:DDPMPipeline", "tiny:qwen2_moe", "tiny:rwkv", "rag:tiny:bert+tiny:t5"]
# name -> (model_type, class, config overrides): published configs of well-known checkpoints
FULL_SIZE = {
    "bert-base": ("bert", "BertForMaskedLM", {}),
    "gpt2": ("gpt2", "GPT2LMHeadModel", {}),
    "vit-base": ("vit", "ViTForImageClassification", {"num_labels": 1000}),
    "whisper-tiny": ("whisper", "WhisperForConditionalGeneration", {}),
    "clip-base": ("clip", "CLIPModel", {}),
    "t5-small": ("t5", "T5ForConditionalGeneration", {}),
    "mamba-130m": ("mamba", "MambaForCausalLM", {"num_hidden_layers": 24}),
}
MIB = 2**20


def build_zoo(folder: Path) -> list[str]:
    """Save each full-size config with random weights (seed 0) as a checkpoint, once."""
    import torch
    import transformers
    from transformers import AutoConfig

    paths = []
    for name, (model_type, cls, overrides) in FULL_SIZE.items():
        target = folder / name
        if not (target / "config.json").is_file():
            print(f"saving {name} ({model_type}, random weights) to {target}", flush=True)
            config = AutoConfig.for_model(model_type, **overrides)
            config.architectures = [cls]
            torch.manual_seed(0)
            getattr(transformers, cls)(config).save_pretrained(target)
        paths.append(str(target))
    return paths


def weights_only_mb(estimator: Any, model: str) -> float | None:
    """What ``accelerate estimate-memory`` reports for fp32: the model's total size."""
    from accelerate.utils import calculate_maximum_sizes

    try:
        return calculate_maximum_sizes(estimator.workload(model).skeleton())[0] / MIB
    except Exception:  # noqa: BLE001 - a model accelerate cannot size is shown as such
        return None


def error(estimate: float | None, measured: float | None) -> float | None:
    """Signed relative error of an estimate against the measurement."""
    if estimate is None or not measured:
        return None
    return (estimate - measured) / measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", help="default: every available backend")
    parser.add_argument("--models", nargs="+", help="default: the zoo")
    parser.add_argument("--zoo", default=str(ROOT / "build" / "memory-zoo"),
                        help="where the full-size random-weight checkpoints are kept")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hwaccel-memory-"))
    os.environ["HWACCEL_CACHE_DIR"] = str(work / "cache")  # calibrations measured in this run
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from hwaccel.estimates.calibration import SETTINGS, device_label, with_helpers
    from hwaccel.estimates.resources import Estimator
    from hwaccel.hardware.detection import detect
    from hwaccel.plugins import load
    from hwaccel.running.jobs import JobPool
    from hwaccel.running.runner import run_job
    from hwaccel.types import BenchmarkRequest

    torch.set_num_threads(1)
    models = args.models or [*TINY, *build_zoo(Path(args.zoo)), "minilm"]
    plugins = load()
    report = detect(plugins, refresh=True)
    estimator = Estimator(plugins, report, db_path=None,
                          on_measure=lambda m, d: print(f"calibrating {d} with {m}", flush=True))
    devices = estimator.devices(args.backends)
    started = time.perf_counter()
    estimates = estimator.estimate_all(models, devices)
    print(f"estimated {len(estimates)} (model, device) pairs in "
          f"{time.perf_counter() - started:.0f} s, calibrations included", flush=True)
    calibration = {m.model for d in devices for p in {estimator.classification(x).pipeline
                                                      for x in models}
                   for m in estimator.calibrator.calibrate(d, p or "").measurements}
    rows = []
    with JobPool() as pool:
        for estimate in estimates:
            hardware = next(d for d in devices if device_label(d) == estimate.device)
            request = BenchmarkRequest(model=estimate.model, hardware=hardware,
                                       classification=estimator.classification(estimate.model),
                                       settings=SETTINGS)
            result = run_job(request, args.timeout, pool)
            # the job's peak plus that of processes its backend started beside it (the
            # web backend's browser), as the estimate and its calibrations count them
            measured = with_helpers(result.peak_rss_mb, result.details) \
                if result.success else None
            rows.append((estimate, measured, weights_only_mb(estimator, estimate.model),
                         None if result.success else f"{result.error_category}: "
                                                      f"{str(result.error)[:80]}"))
            shown = f"{measured:,.0f}" if measured else rows[-1][3]
            print(f"measured {estimate.model} on {estimate.device}: {shown}", flush=True)

    print()
    header = (f"{'model':<44} {'device':<13} {'params':>13} {'estimate':>9} {'measured':>9} "
              f"{'error':>7} {'weights':>8} {'error':>7}  note")
    print(header)
    print("-" * len(header))
    ours, theirs = [], []
    for estimate, measured, weights, failure in rows:
        mine, other = error(estimate.inference_peak_mb, measured), error(weights, measured)
        note = "calibration" if estimate.model in calibration else (failure or "")
        if measured and note != "calibration" and mine is not None:
            ours.append(abs(mine))
            if other is not None:
                theirs.append(abs(other))
        name = estimate.model if len(estimate.model) <= 44 else "..." + estimate.model[-41:]
        print(f"{name:<44} {estimate.device:<13} {estimate.parameters:>13,} "
              f"{_mb(estimate.inference_peak_mb):>9} {_mb(measured):>9} {_pct(mine):>7} "
              f"{_mb(weights):>8} {_pct(other):>7}  {note}")
    print()
    if ours:
        print(f"hwaccel estimate: median |error| {statistics.median(ours):.1%}, worst "
              f"{max(ours):.1%} over {len(ours)} measured pairs (targets 10% and 25%)")
    if theirs:
        print(f"weights only (accelerate estimate-memory): median |error| "
              f"{statistics.median(theirs):.1%}, worst {max(theirs):.1%}")
    return 0 if ours and statistics.median(ours) <= 0.10 and max(ours) <= 0.25 else 1


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


if __name__ == "__main__":
    sys.exit(main())
