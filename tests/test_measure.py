"""The one measurement method: percentiles, summaries and the timing loop."""

from __future__ import annotations

import statistics
import time

import pytest

from hwaccel.kit.measure import percentile, summarize, time_calls

SAMPLES = [
    [1.0, 2.0],
    [1.0, 2.0, 3.0, 4.0],
    [10.0, 0.5, 3.25, 7.0, 7.0, 100.0, 2.5],
    [0.1 * i * i for i in range(37)],
    [5.0] * 9 + [500.0],
]


@pytest.mark.parametrize("data", SAMPLES)
@pytest.mark.parametrize("q", [50, 90, 99])
def test_percentile_matches_inclusive_quantiles(data, q):
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    assert percentile(sorted(data), q) == pytest.approx(cuts[q - 1])


def test_percentile_examples_by_hand():
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 90) == pytest.approx(46.0)  # rank 3.6: 40 + 0.6 * 10
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 50.0


@pytest.mark.parametrize("q", [0, 50, 90, 99, 100])
def test_percentile_of_one_value(q):
    assert percentile([4.2], q) == 4.2


def test_percentile_of_nothing():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarize():
    times = [5.0, 1.0, 3.0, 2.0, 8.0, 13.0, 1.5, 2.25]
    summary = summarize(times, batch_size=4)
    mean = statistics.fmean(times)
    stdev = statistics.stdev(times)
    assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"]
    assert summary["min_ms"] == 1.0
    assert summary["max_ms"] == 13.0
    assert summary["mean_ms"] == pytest.approx(mean)
    assert summary["stdev_ms"] == pytest.approx(stdev)
    assert summary["throughput"] == pytest.approx(4 / (mean / 1000.0))
    assert summary["cv"] == pytest.approx(stdev / mean)
    assert summary["p50_ms"] == pytest.approx(2.625)  # between 2.25 and 3.0


def test_summarize_one_value():
    summary = summarize([8.0], batch_size=2)
    assert summary["p50_ms"] == summary["p90_ms"] == summary["p99_ms"] == 8.0
    assert summary["mean_ms"] == 8.0
    assert summary["stdev_ms"] == 0.0
    assert summary["cv"] == 0.0
    assert summary["throughput"] == pytest.approx(250.0)


class Recorder:
    """A call that sleeps, counts itself and records when each call started and ended."""

    def __init__(self, sleep_s: float = 0.001, cold_sleep_s: float | None = None):
        self.sleep_s = sleep_s
        self.cold_sleep_s = cold_sleep_s
        self.spans: list[tuple[float, float]] = []

    def __call__(self) -> int:
        start = time.perf_counter()
        first = not self.spans
        time.sleep(self.cold_sleep_s if first and self.cold_sleep_s else self.sleep_s)
        self.spans.append((start, time.perf_counter()))
        return len(self.spans)


def test_time_calls_meets_count_and_duration():
    call = Recorder(cold_sleep_s=0.03)
    warmup, min_iterations, min_seconds = 2, 5, 0.05
    timing = time_calls(call, warmup=warmup, min_iterations=min_iterations,
                        min_seconds=min_seconds, max_seconds=10.0)
    times = timing.times_ms
    assert len(times) >= min_iterations
    assert len(call.spans) == 1 + warmup + len(times)  # cold and warm-up calls are not timed
    assert timing.cold_ms >= 30.0
    assert timing.last_output == len(call.spans)
    timed = call.spans[1 + warmup:]
    assert timed[-1][1] - timed[0][0] >= min_seconds - 0.002
    # it stopped at the first call that met both minimums, not later
    assert len(times) - 1 < min_iterations or timed[-2][1] - timed[0][0] < min_seconds
    assert all(t >= 1.0 for t in times)


def test_time_calls_min_iterations_rule_when_seconds_are_met():
    call = Recorder()
    timing = time_calls(call, warmup=0, min_iterations=7, min_seconds=0.0, max_seconds=10.0)
    assert len(timing.times_ms) == 7
    assert len(call.spans) == 8


def test_max_seconds_stops_a_long_run():
    call = Recorder()
    started = time.perf_counter()
    timing = time_calls(call, warmup=1, min_iterations=3, min_seconds=100.0, max_seconds=0.05)
    assert time.perf_counter() - started < 5.0
    assert len(timing.times_ms) >= 3
    assert len(call.spans) == 2 + len(timing.times_ms)


def test_max_seconds_does_not_cut_below_min_iterations():
    call = Recorder(sleep_s=0.01)
    timing = time_calls(call, warmup=0, min_iterations=6, min_seconds=100.0, max_seconds=0.001)
    assert len(timing.times_ms) == 6


def test_max_abs_diff_compares_every_output_in_fp32():
    import numpy as np
    import torch

    from hwaccel.kit.measure import max_abs_diff

    reference = {"logits": torch.tensor([[1.0, 2.0]]), "boxes": torch.zeros(1, 4)}
    device = {"logits": np.array([[1.0, 2.5]], dtype=np.float16), "boxes": torch.zeros(1, 4)}
    assert max_abs_diff(reference, device) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="differ in names"):
        max_abs_diff(reference, {"logits": device["logits"]})


class _Embedder:
    """A workload whose embedding of an output is its ``vector``; ``None`` for the rest."""

    @staticmethod
    def embeddings(outputs, inputs):
        return outputs.get("vector")


def test_embedding_similarity_is_the_worst_rows_cosine():
    import torch

    from hwaccel.kit.measure import embedding_similarity

    reference = {"vector": torch.tensor([[1.0, 0.0], [0.0, 2.0]])}
    outputs = {"vector": torch.tensor([[3.0, 0.0], [1.0, 1.0]])}  # row 1 is 45 degrees off
    similarity = embedding_similarity(_Embedder(), reference, outputs, {})
    assert similarity == pytest.approx(2 ** -0.5)
    assert embedding_similarity(_Embedder(), {"logits": 1}, {"logits": 1}, {}) is None
    assert embedding_similarity(object(), reference, outputs, {}) is None  # no embeddings
    assert embedding_similarity(_Embedder(), None, outputs, {}) is None  # nothing to compare


def test_an_embedding_model_pools_over_its_attention_mask_and_others_make_none(plugins):
    import torch

    from hwaccel.kit.workloads import load_workload
    from hwaccel.models.classify import classify

    minilm = load_workload("minilm", classify("minilm", plugins).classification)
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the padded position is left out of the mean
    pooled = minilm.embeddings({"last_hidden_state": hidden}, {"attention_mask": mask})
    assert pooled.tolist() == [[2.0, 3.0]]
    gpt2 = load_workload("tiny:gpt2", classify("tiny:gpt2", plugins).classification)
    assert gpt2.embeddings({"last_hidden_state": hidden}, {"attention_mask": mask}) is None


def _cpu_request(plugins, model: str, **settings):
    from hwaccel.models.classify import classify
    from hwaccel.types import BenchmarkRequest, BenchmarkSettings, HardwareInfo

    hardware = HardwareInfo(backend="cpu", device="cpu", name="host", available=True)
    return BenchmarkRequest(model=model, hardware=hardware,
                            classification=classify(model, plugins).classification,
                            settings=BenchmarkSettings(**settings))


def test_the_call_context_is_entered_once_around_every_call_of_the_device_model(
        plugins, one_thread):
    import contextlib

    import torch

    from hwaccel.kit.measure import benchmark_workload

    entered: list[str] = []
    linear_dtypes: list[torch.dtype] = []

    @contextlib.contextmanager
    def counting():
        entered.append("enter")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    def place_model(model):
        first_linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        first_linear.register_forward_hook(lambda m, i, out: linear_dtypes.append(out.dtype))
        return model

    request = _cpu_request(plugins, "tiny:bert", warmup=2, min_iterations=4, min_seconds=0.0,
                           seq_len=8)
    result = benchmark_workload(request, place_model=place_model,
                                place_inputs=lambda inputs: inputs, compare_reference=True,
                                call_context=counting)
    assert result.success and result.iterations >= 4
    calls = 1 + 2 + result.iterations  # the cold call, the warm-up, the timed calls
    assert len(entered) == calls
    # every device call ran under autocast; the CPU reference (no hook) stayed fp32
    assert linear_dtypes == [torch.bfloat16] * calls
    assert result.max_abs_diff > 1e-3  # bf16 rounding, seen against the fp32 reference


def test_without_a_call_context_the_device_model_runs_as_it_is(plugins, one_thread):
    import torch

    from hwaccel.kit.measure import benchmark_workload

    linear_dtypes: list[torch.dtype] = []

    def place_model(model):
        first_linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        first_linear.register_forward_hook(lambda m, i, out: linear_dtypes.append(out.dtype))
        return model

    request = _cpu_request(plugins, "tiny:bert", warmup=0, min_iterations=2, min_seconds=0.0,
                           seq_len=8)
    result = benchmark_workload(request, place_model=place_model,
                                place_inputs=lambda inputs: inputs, compare_reference=True)
    assert set(linear_dtypes) == {torch.float32}
    assert result.max_abs_diff < 1e-4
