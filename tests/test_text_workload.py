"""The text workload runs real tiny architectures of many families, not only bert/gpt2/t5.

`benchmarks/type_sweep.py` runs every labelled model type of the installed transformers; this
test keeps a spread of common ones from regressing.
"""

from __future__ import annotations

import pytest

from conftest import assert_same_weights
from hwaccel.kit.workloads import load_workload
from hwaccel.models.classify import classify

COMMON_TEXT_TYPES = ["bert", "roberta", "distilbert", "albert", "electra", "deberta-v2",
                     "xlm-roberta", "gpt2", "llama", "mistral", "qwen2", "gemma", "phi", "opt",
                     "gpt_neox", "bloom", "falcon", "codegen", "gptj", "t5", "bart", "mbart",
                     "pegasus", "marian"]


@pytest.mark.parametrize("model_type", COMMON_TEXT_TYPES)
def test_tiny_text_model_runs_forward_and_generate(plugins, model_type):
    classification = classify(f"tiny:{model_type}", plugins).classification
    assert classification.pipeline == "text"
    workload = load_workload(f"tiny:{model_type}", classification)
    model = workload.load_model()
    inputs = workload.make_inputs(2, 8)
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    assert expected
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    if workload.generative:
        tokens = workload.generate(model, inputs, new_tokens=3)
        assert tuple(tokens.shape) == (2, workload.generated_length(inputs, new_tokens=3))


def test_tiny_builds_are_identical(plugins):
    workload = load_workload("tiny:llama")
    assert_same_weights(workload.load_model(), workload.load_model())


# Types that failed through hwaccel's own doing before issue 14: a coupled size broken by the
# shrinker (blt's global width, kolibri's shared-KV layer indices, longcat's latent head
# sizes, qwen4's layer kinds, colqwen2's rotary sections), an input the model takes beside
# its token ids (bros's boxes, lxmert's region features, xmod's language ids), no vocabulary
# (canine), no padding id (esm), an unset top-k (deepseek_v2).
PREVIOUSLY_FAILING = ["blt", "bros", "lxmert", "xmod", "canine", "esm", "colqwen2",
                      "kolibri1_1", "longcat_flash", "qwen4_exp_text", "deepseek_v2"]


@pytest.mark.parametrize("model_type", PREVIOUSLY_FAILING)
def test_previously_failing_text_types_run(plugins, model_type):
    classification = classify(f"tiny:{model_type}", plugins).classification
    workload = load_workload(f"tiny:{model_type}", classification)
    workload.prepare()
    model = workload.load_model()
    inputs = workload.make_inputs(1, 32)  # what `hwaccel benchmark` runs by default
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    assert all(value.shape[0] == 1 for value in outputs.values())


def test_a_type_whose_default_config_lacks_values_runs_with_them_completed(plugins):
    # DBRX's default attention config has no rope_theta and leaves clip_qkv None, which its
    # attention clamps with: real checkpoints set both
    from transformers import CONFIG_MAPPING

    default = CONFIG_MAPPING["dbrx"]()
    assert "rope_theta" not in vars(default.attn_config) and default.attn_config.clip_qkv is None
    workload = load_workload("tiny:dbrx", classify("tiny:dbrx", plugins).classification)
    model = workload.load_model()
    assert model.config.attn_config.rope_theta == default.rope_parameters["rope_theta"]
    assert isinstance(model.config.attn_config.clip_qkv, float)
    inputs = workload.make_inputs(1, 8)
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
