"""The ``state-space`` pipeline: classification, the workload on tiny SSMs, generated tests.

Expected labels are copied from shared/TAXONOMY.md (mamba, mamba2, falcon_mamba, jamba and rwkv
are among its recurrent-state model types; all are generative causal LMs). Which models are
hybrids with attention layers is copied from the model cards: Jamba interleaves attention
layers with Mamba layers, the others are attention-free.
"""

from __future__ import annotations

import json

import pytest

from conftest import ONE_THREAD, benchmark_one, generate_and_run, tiny_workloads
from hwaccel.kit.tiny import TINY_VOCAB
from hwaccel.models.classify import classify

SSM_MODELS = ["mamba", "mamba2", "falcon_mamba", "rwkv", "jamba"]
HYBRIDS = {"jamba"}
FAST = ["--iterations", "5", "--min-seconds", "0.05", "--warmup", "1", "--threads", "1"]
# this module's in-process models run on one torch thread (conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workloads(plugins):
    """One workload, model and set of inputs per tiny model, prepared and built once."""
    return tiny_workloads(SSM_MODELS, plugins, prepare=True)


@pytest.mark.parametrize("model_type", SSM_MODELS)
def test_state_space_plugin_claims_with_the_taxonomy_labels(plugins, model_type):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert (result.family, result.subfamily, result.pipeline) == (
        "text_generation", "causal_lm", "state-space")
    assert result.architecture == "decoder-only"
    assert result.plugin == "state-space"
    assert result.distribution == "hwaccel-pipeline-state-space"
    assert result.workload == "hwaccel_pipeline_state_space.workload:StateSpaceWorkload"
    assert result.confidence == 1.0 and result.signal == "config"


@pytest.mark.parametrize("model_type", SSM_MODELS)
def test_forward_gives_logits_of_the_expected_shape(workloads, model_type):
    workload, model, inputs = workloads[model_type]
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    assert expected == {"logits": (2, 8, workload.text_config.vocab_size)}
    assert {name: tuple(value.shape) for name, value in outputs.items()} == expected
    assert all(value.isfinite().all() for value in outputs.values())


@pytest.mark.parametrize("model_type", SSM_MODELS)
def test_generate_adds_exactly_the_new_tokens(workloads, model_type):
    workload, model, inputs = workloads[model_type]
    tokens = workload.generate(model, inputs, new_tokens=3)
    assert tuple(tokens.shape) == (2, 8 + 3)


@pytest.mark.parametrize("model_type", SSM_MODELS)
def test_recurrent_state_does_not_grow_with_the_prompt(workloads, model_type):
    workload, model, _ = workloads[model_type]
    short = workload.state_size(model, workload.make_inputs(2, 8))
    long = workload.state_size(model, workload.make_inputs(2, 32))
    assert short["recurrent"] > 0
    assert long["recurrent"] == short["recurrent"]
    if model_type in HYBRIDS:
        assert workload.attention_layer_count >= 1
        assert long["attention"] == 4 * short["attention"] > 0  # the KV cache is linear
    else:
        assert workload.attention_layer_count == 0
        assert long["attention"] == short["attention"] == 0


def test_state_grows_with_the_batch_but_not_the_sequence(workloads):
    workload, model, _ = workloads["mamba"]
    one = workload.state_size(model, workload.make_inputs(1, 8))
    three = workload.state_size(model, workload.make_inputs(3, 8))
    assert three["recurrent"] == 3 * one["recurrent"]


def test_tiny_mamba2_heads_are_consistent(workloads):
    config = workloads["mamba2"][0].config
    assert config.num_heads * config.head_dim == config.expand * config.hidden_size
    assert config.num_heads % config.n_groups == 0


def test_tiny_jamba_keeps_an_attention_layer(workloads):
    kinds = workloads["jamba"][0].layer_kinds
    assert "full_attention" in kinds and "linear_attention" in kinds


def test_kernel_fallback_notice_is_kept_out_of_the_log(workloads, capfd):
    from transformers.utils import logging

    workload, model, inputs = workloads["mamba"]
    before = len(workload.kernel_fallbacks)
    logging.warning_once.cache_clear()  # transformers logs each notice once per process
    workload.forward(model, inputs)
    assert "falling back" not in capfd.readouterr().err
    notes = workload.kernel_fallbacks[before:]
    assert any("mamba_ssm" in note for note in notes), notes


@pytest.mark.slow
def test_generated_state_space_tests_pass_ruff_and_pytest(tmp_path):
    # 3 shared checks + generate + 2 state checks per model
    run = generate_and_run([f"tiny:{model_type}" for model_type in SSM_MODELS],
                           tmp_path / "generated", env=ONE_THREAD,
                           expect_passed=6 * len(SSM_MODELS))
    assert "falling back" not in run.stdout


@pytest.mark.slow
def test_benchmark_records_a_successful_state_space_row(tmp_db):
    row = benchmark_one("tiny:mamba", tmp_db, "--batch-size", "2", "--seq-len", "8", *FAST,
                        absent_from_stderr=["falling back"])
    assert row["pipeline"] == "state-space"
    assert json.loads(row["output_shape"]) == {"logits": [2, 8, TINY_VOCAB]}
