"""The text workload runs real tiny architectures of many families, not only bert/gpt2/t5.

`benchmarks/text_sweep.py` runs every text model type of the installed transformers; this
test keeps a spread of common ones from regressing.
"""

from __future__ import annotations

import pytest

from conftest import assert_same_weights
from hwaccel.classify import classify
from hwaccel.workloads import load_workload

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
