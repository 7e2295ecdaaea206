"""The ``moe`` pipeline: classification, the workload on tiny MoE models, generated tests.

Expected labels are copied from shared/TAXONOMY.md (mixtral, deepseek_v3 and
switch_transformers are its MoE examples; qwen2_moe follows rule 6 with 60 default experts).
Expected expert counts and k come from transformers' default configs, read here directly.
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

from conftest import ONE_THREAD, benchmark_one, generate_and_run, tiny_workloads
from hwaccel.kit.tiny import TINY_LAYERS, TINY_VOCAB
from hwaccel.models.classify import classify

# model type -> (family, subfamily, architecture), from TAXONOMY.md
MOE_MODELS = {
    "mixtral": ("text_generation", "causal_lm", "decoder-only"),
    "qwen2_moe": ("text_generation", "causal_lm", "decoder-only"),
    "deepseek_v3": ("text_generation", "causal_lm", "decoder-only"),
    "switch_transformers": ("text_generation", "seq2seq", "encoder-decoder"),
}
# model type -> (config key of the expert count, config key of k, or None: Switch is top-1)
EXPERT_KEYS = {"mixtral": ("num_local_experts", "num_experts_per_tok"),
               "qwen2_moe": ("num_experts", "num_experts_per_tok"),
               "deepseek_v3": ("n_routed_experts", "num_experts_per_tok"),
               "switch_transformers": ("num_experts", None)}
FAST = ["--iterations", "5", "--min-seconds", "0.05", "--warmup", "1", "--threads", "1"]
# this module's in-process models run on one torch thread (conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workloads(plugins):
    """One workload, model and set of inputs per tiny model, built once."""
    return tiny_workloads(MOE_MODELS, plugins)


@pytest.mark.parametrize("model_type", MOE_MODELS)
def test_moe_plugin_claims_with_the_taxonomy_labels(plugins, model_type):
    result = classify(f"tiny:{model_type}", plugins).classification
    family, subfamily, architecture = MOE_MODELS[model_type]
    assert (result.family, result.subfamily, result.pipeline) == (family, subfamily, "moe")
    assert result.architecture == architecture
    assert result.plugin == "moe" and result.distribution == "hwaccel-pipeline-moe"
    assert result.workload == "hwaccel_pipeline_moe.workload:MoeWorkload"
    assert result.confidence == 1.0 and result.signal == "config"


def test_dense_text_models_stay_with_the_text_plugin(plugins):
    assert classify("tiny:llama", plugins).classification.pipeline == "text"


@pytest.mark.parametrize("model_type", MOE_MODELS)
def test_experts_and_top_k_come_from_the_config(workloads, model_type):
    workload, _, _ = workloads[model_type]
    default = AutoConfig.for_model(model_type)
    experts_key, k_key = EXPERT_KEYS[model_type]
    assert workload.num_experts == getattr(default, experts_key) > 1
    assert workload.top_k == (getattr(default, k_key) if k_key else 1)


@pytest.mark.parametrize("model_type", MOE_MODELS)
def test_forward_returns_logits_and_router_logits_of_the_expected_shapes(workloads,
                                                                         model_type):
    workload, model, inputs = workloads[model_type]
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    vocab = workload.text_config.vocab_size
    assert expected["logits"][-1] == vocab
    routers = [name for name in expected if name.endswith("router_logits")]
    assert routers, "router logits are expected for every listed model"
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    for name in routers:
        batch, layers, _, experts = expected[name]
        assert (batch, experts) == (2, workload.num_experts) and layers >= 1
    assert all(value.dim() > 0 for value in outputs.values()), "scalar losses are dropped"


@pytest.mark.parametrize("model_type", MOE_MODELS)
def test_routing_sends_each_token_to_k_distinct_experts(workloads, model_type):
    workload, model, inputs = workloads[model_type]
    calls = workload.routing(model, inputs)
    assert len(calls) == workload.moe_layer_count >= 1
    tokens = inputs["input_ids"].numel()
    if workload.encoder_decoder:
        tokens = inputs["decoder_input_ids"].numel()  # both stacks see 2 x 8 tokens here
    for call in calls:
        assert tuple(call["logits"].shape) == (tokens, workload.num_experts)
        assert tuple(call["experts"].shape) == (tokens, workload.top_k)
        for row in call["experts"].tolist():
            assert len(set(row)) == workload.top_k
            assert all(0 <= expert < workload.num_experts for expert in row)


def test_plain_top_k_routers_pick_the_highest_logits(workloads):
    workload, model, inputs = workloads["mixtral"]
    assert workload.routes_by_top_logits(model)
    for call in workload.routing(model, inputs):
        picked = call["logits"].gather(-1, call["experts"]).sort(-1, descending=True).values
        assert picked.equal(call["logits"].topk(workload.top_k).values)


def test_deepseek_group_limited_routing_is_recognised(workloads):
    workload, model, inputs = workloads["deepseek_v3"]
    assert not workload.routes_by_top_logits(model)


def test_tiny_deepseek_keeps_an_moe_layer_and_latent_attention_heads(workloads):
    workload, _, _ = workloads["deepseek_v3"]
    config = workload.config
    default = AutoConfig.for_model("deepseek_v3")
    assert default.first_k_dense_replace >= config.num_hidden_layers  # the core's shrink
    assert workload.moe_layer_indices() == (config.num_hidden_layers - 1,)
    assert config.num_key_value_heads == config.num_attention_heads


@pytest.mark.parametrize("model_type", ["mixtral", "switch_transformers"])
def test_generate_adds_exactly_the_new_tokens(workloads, model_type):
    workload, model, inputs = workloads[model_type]
    tokens = workload.generate(model, inputs, new_tokens=3)
    assert tuple(tokens.shape) == (2, workload.generated_length(inputs, new_tokens=3))


@pytest.mark.slow
def test_generated_moe_tests_pass_ruff_and_pytest(tmp_path):
    # 3 shared checks + generate + 3 routing checks per model; DeepSeek-V3's group-limited
    # router skips the plain top-k check
    run = generate_and_run([f"tiny:{model_type}" for model_type in MOE_MODELS],
                           tmp_path / "generated", env=ONE_THREAD, expect_passed=27)
    assert "27 passed, 1 skipped" in run.stdout
    assert "test_hf_tiny_deepseek_v3_cpu.py" in run.stdout.split("short test summary")[-1]


@pytest.mark.slow
def test_benchmark_records_a_successful_moe_row(tmp_db):
    row = benchmark_one("tiny:mixtral", tmp_db, "--batch-size", "2", "--seq-len", "8", *FAST)
    assert row["pipeline"] == "moe"
    experts = AutoConfig.for_model("mixtral").num_local_experts
    assert json.loads(row["output_shape"]) == {"logits": [2, 8, TINY_VOCAB],
                                  "router_logits": [2, TINY_LAYERS, 8, experts]}
