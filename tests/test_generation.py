"""The generation measurement: token clock, per-token figures, token match, observed cache."""

from __future__ import annotations

import statistics

import pytest

from conftest import cpu_record
from hwaccel.kit.failures import AttributedError
from hwaccel.kit.generation import (
    GenerationTiming,
    TokenClock,
    cache_label,
    generation_fields,
    token_match,
)
from hwaccel.kit.measure import benchmark_workload
from hwaccel.models.classify import classify_ref
from hwaccel.models.resolve import resolve_model
from hwaccel.types import BenchmarkRequest, BenchmarkSettings

SETTINGS = BenchmarkSettings(seq_len=6, new_tokens=5, warmup=0, min_iterations=2,
                             min_seconds=0.0)


def request_for(model: str, plugins, settings: BenchmarkSettings = SETTINGS,
                backend: str = "cpu") -> BenchmarkRequest:
    """A benchmark request of ``model`` on the host CPU (record as the cpu backend makes it)."""
    classification = classify_ref(resolve_model(model), plugins).classification
    return BenchmarkRequest(model=model, hardware=cpu_record(backend=backend),
                            classification=classification, settings=settings)


def test_token_clock_ignores_the_prompt_and_stamps_each_token():
    clock = TokenClock()
    clock.start()
    clock.put("prompt")
    assert clock.stamps == []
    for _ in range(3):
        clock.put("token")
    clock.end()
    assert len(clock.stamps) == 3
    assert clock.started <= clock.stamps[0] <= clock.stamps[1] <= clock.stamps[2]
    clock.start()  # a new call starts afresh, the prompt again ignored
    clock.put("prompt")
    assert clock.stamps == []


def test_figures_from_token_times():
    import torch

    tokens = torch.tensor([[7, 1, 2, 3, 4], [7, 5, 6, 7, 8]])
    timing = GenerationTiming(cold_ms=50.0, times_ms=(40.0, 60.0), last_output=tokens,
                              token_ms=((10.0, 12.0, 15.0, 19.0), (20.0, 21.0, 23.0, 30.0)),
                              kv_cache="dynamic", new_tokens=4, batch_size=2)
    reference = torch.tensor([[7, 1, 2, 3, 4], [7, 5, 0, 7, 0]])
    fields = generation_fields(timing, reference)
    assert fields["ttft_ms"] == 15.0  # the median of the first tokens' times, 10 and 20
    steps = [2.0, 3.0, 4.0, 1.0, 2.0, 7.0]  # gaps between consecutive tokens of both calls
    assert fields["tpot_p50_ms"] == statistics.median(steps)
    assert fields["tpot_p90_ms"] == pytest.approx(5.5)  # rank 4.5 of the six gaps: 4 and 7
    assert fields["tokens_per_s"] == pytest.approx(2 * 4 / 0.050)  # mean call 50 ms
    assert fields["token_match"] == 0.75  # two of the eight new tokens differ
    assert fields["kv_cache"] == "dynamic"


def test_token_times_not_reported_are_not_invented():
    import torch

    timing = GenerationTiming(cold_ms=5.0, times_ms=(4.0,), last_output=torch.zeros(1, 3),
                              token_ms=((),), kv_cache=None, new_tokens=3, batch_size=1)
    fields = generation_fields(timing, None)
    assert fields["ttft_ms"] is None and fields["tpot_p50_ms"] is None
    assert "not measured" in fields["details"]["token_times"]
    assert fields["tokens_per_s"] == pytest.approx(3 / 0.004)
    assert fields["token_match"] is None


def test_token_match_needs_the_same_shape():
    import torch

    assert token_match(torch.ones(2, 6), torch.ones(2, 6), 4) == 1.0
    with pytest.raises(Exception, match="generated"):
        token_match(torch.ones(2, 6), torch.ones(1, 6), 4)


def test_cache_labels():
    class DynamicCache:
        pass

    class StaticCache:
        pass

    class MambaCache:
        pass

    assert cache_label(DynamicCache()) == "dynamic"
    assert cache_label(StaticCache()) == "static"
    assert cache_label(MambaCache()) == "MambaCache"
    assert cache_label(None).startswith("none:")


@pytest.mark.parametrize("model", ["tiny:gpt2", "tiny:t5"])
def test_cpu_generation_row(model, plugins, one_torch_thread):
    result = benchmark_workload(request_for(model, plugins), place_model=lambda m: m,
                                place_inputs=lambda i: i, threads=1)
    assert result.success and result.new_tokens == 5 and result.iterations >= 2
    assert 0 < result.ttft_ms < result.max_ms
    assert 0 < result.tpot_p50_ms <= result.tpot_p90_ms < result.max_ms
    assert result.tokens_per_s == pytest.approx(5 / (result.mean_ms / 1000.0))
    assert result.token_match == 1.0  # PyTorch fp32 against a second fp32 copy
    assert result.kv_cache == "dynamic"  # transformers' default cache, observed
    assert result.output_shapes["sequences"][0] == 1
    assert result.peak_rss_mb is not None and result.details["load_peak_rss_mb"] is not None


def test_a_device_that_decodes_differently_is_seen_in_token_match(plugins, one_torch_thread):
    """A device whose model adds a bias to one token's logit generates other tokens: the
    share identical to the reference drops below 1."""
    import torch

    def place(model):
        head = model.get_output_embeddings()
        bias = torch.zeros(head.weight.shape[0])
        bias[3] = 1e4  # token 3 always wins
        head.bias = torch.nn.Parameter(bias)
        return model

    result = benchmark_workload(request_for("tiny:gpt2", plugins), place_model=place,
                                place_inputs=lambda i: i, threads=1)
    assert result.success and result.token_match < 1.0


def test_a_model_that_does_not_generate_is_unsupported(plugins):
    with pytest.raises(AttributedError) as raised:
        benchmark_workload(request_for("tiny:bert", plugins), place_model=lambda m: m,
                           place_inputs=lambda i: i)
    assert raised.value.category == "unsupported"
    assert "does not generate" in raised.value.message


@pytest.mark.parametrize("backend", ["web", "qnn"])
def test_fixed_graph_backends_declare_no_generation(backend, plugins):
    from hwaccel.plugins import load

    result, _ = load().call_first("hwaccel_benchmark",
                                  request=request_for("tiny:gpt2", plugins, backend=backend))
    assert not result.success and result.error_category == "unsupported"
    assert "generat" in result.error


def test_static_cache_asked_is_observed(plugins, one_torch_thread):
    settings = BenchmarkSettings(seq_len=6, new_tokens=4, warmup=0, min_iterations=1,
                                 min_seconds=0.0, cache_implementation="static")
    result = benchmark_workload(request_for("tiny:gpt2", plugins, settings),
                                place_model=lambda m: m, place_inputs=lambda i: i, threads=1)
    assert result.success and result.kv_cache == "static"
    assert result.token_match == 1.0  # the reference keeps the default dynamic cache


@pytest.mark.parametrize(("given", "asked"), [([], None), (["--kv-cache", "static"], "static"),
                                             (["--kv-cache", "dynamic"], None)])
def test_kv_cache_option_sets_the_cache_asked_for(given, asked):
    import argparse

    from hwaccel.cli.measure_options import add_measure_options, settings_of, sweep_from

    parser = argparse.ArgumentParser()
    add_measure_options(parser, timeout=60.0)
    (point,) = sweep_from(parser.parse_args(["--new-tokens", "4", *given]), None)
    settings = settings_of(point)
    assert settings.new_tokens == 4 and settings.cache_implementation == asked


def test_openvino_refuses_a_transformers_cache_choice(plugins):
    from hwaccel_openvino.bench import run

    settings = BenchmarkSettings(new_tokens=4, cache_implementation="static")
    result = run(request_for("tiny:gpt2", plugins, settings, backend="openvino"))
    assert not result.success and result.error_category == "unsupported"
    assert "static cache does not apply" in result.error
