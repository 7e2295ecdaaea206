"""The ``rag`` pipeline: retrieve-then-generate compositions and transformers' Rag models.

Expected labels are copied from shared/TAXONOMY.md (rule 1 and "Outside transformers": a
composition is text_generation with its generator's subfamily, pipeline rag; model type rag is
text_generation/seq2seq/rag), not computed by the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from conftest import (
    assert_same_weights,
    benchmark_one,
    generate_and_run,
    run_cli,
    workload_and_model,
)
from hwaccel.errors import HwaccelError
from hwaccel.models.classify import classify
from hwaccel.models.resolve import resolve_model
from hwaccel_pipeline_rag.documents import ANSWERS, DOCUMENTS, QUESTIONS, hash_ids
from hwaccel_pipeline_rag.workload import RagWorkload

WORKLOAD = "hwaccel_pipeline_rag.workload:RagWorkload"
# (model, family, subfamily, pipeline) from TAXONOMY.md
MODELS = [
    ("rag:minilm+tiny:gpt2", "text_generation", "causal_lm", "rag"),
    ("rag:tiny:bert+tiny:t5", "text_generation", "seq2seq", "rag"),
    ("tiny:rag", "text_generation", "seq2seq", "rag"),
]
SPECS = [spec for spec, *_ in MODELS]
FAST = ["--iterations", "5", "--min-seconds", "0.05", "--warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def loaded(plugins):
    """Each listed model's workload and loaded model, built once for the module."""
    return {spec: workload_and_model(spec, plugins, prepare=True) for spec in SPECS}


@pytest.mark.parametrize("spec, family, subfamily, pipeline", MODELS)
def test_classification(plugins, spec, family, subfamily, pipeline):
    result = classify(spec, plugins).classification
    assert (result.family, result.subfamily, result.pipeline) == (family, subfamily, pipeline)
    assert result.plugin == "rag" and result.workload == WORKLOAD
    assert result.architecture == "retrieve-then-generate"
    assert result.signal == "config" and result.confidence == 1.0


@pytest.mark.parametrize("spec", ["rag:minilm", "rag:tiny:bert+", "rag:a+b+c"])
def test_a_malformed_composition_is_one_line_and_exit_2(spec):
    proc = run_cli("classify", spec)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"hwaccel: error: malformed composition {spec!r}")


@pytest.mark.parametrize("spec, problem", [
    ("rag:tiny:gpt2+tiny:gpt2", "the retriever 'tiny:gpt2' is text_generation, not an "
                                "embedding model"),
    ("rag:tiny:bert+tiny:bert", "the generator 'tiny:bert' is embedding, not a causal or "
                                "sequence-to-sequence text generator"),
])
def test_a_composition_of_unsuitable_parts_has_no_workload(plugins, spec, problem):
    result = classify(spec, plugins).classification
    assert (result.family, result.pipeline, result.plugin) == ("text_generation", "rag", "rag")
    assert result.workload is None
    assert result.reason.endswith(f"cannot run: {problem}")
    # the workload refuses such parts too, whoever builds it
    workload = RagWorkload(resolve_model(spec), dataclasses.replace(result, workload=WORKLOAD))
    with pytest.raises(HwaccelError, match="must be"):
        workload.prepare()


def test_hashed_token_ids_are_stable_and_inside_the_vocabulary():
    ids = [hash_ids(doc, 1024) for doc in DOCUMENTS]
    assert all(4 <= i < 1024 for row in ids for i in row)
    assert len({tuple(row) for row in ids}) == len(DOCUMENTS)
    assert hash_ids("GPUs excel.", 1024) == hash_ids("gpus  excel .", 1024)
    # the same in a fresh process (no per-process hash seed)
    code = ("from hwaccel_pipeline_rag.documents import hash_ids; "
            "print(hash_ids('GPUs excel.', 1024))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=True)
    assert json.loads(fresh.stdout) == hash_ids("GPUs excel.", 1024)


@pytest.mark.parametrize("spec", SPECS)
def test_workload_retrieves_then_generates(loaded, spec):
    workload, model = loaded[spec]
    inputs = workload.make_inputs(2, 16)
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    assert set(expected) == {"logits", "retrieval_scores", "retrieved_indices"}
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    k = expected["retrieval_scores"][1]
    assert 0 < k <= len(DOCUMENTS)
    scores, indices = outputs["retrieval_scores"], outputs["retrieved_indices"]
    for row in range(2):
        assert len(set(indices[row].tolist())) == k
        assert (scores[row, :-1] >= scores[row, 1:]).all()
    tokens = workload.generate(model, inputs, new_tokens=3)
    assert tuple(tokens.shape) == (2, workload.generated_length(inputs, new_tokens=3))


def test_a_causal_prompt_holds_the_documents_then_the_question(loaded):
    workload, model = loaded["rag:minilm+tiny:gpt2"]
    inputs = workload.make_inputs(2, 16)
    prompt_length = workload.prompt_length(inputs)
    outputs = workload.forward(model, inputs)
    assert outputs["logits"].shape[1] == prompt_length
    tokens = workload.generate(model, inputs, new_tokens=3)
    ids, mask = model.prompt(outputs["retrieved_indices"], inputs["question_ids"],
                             inputs["question_attention_mask"])
    assert tokens[:, :prompt_length].equal(ids)  # generation continues the prompt
    # tiny:gpt2 ships no tokenizer: the documents are hashed into its vocabulary, and the
    # prompt's real tokens are the retrieved documents in rank order, then the question
    assert workload.tokenizers[1] is None
    vocab = workload.generator_config.vocab_size
    question = hash_ids(QUESTIONS[0], vocab)
    expected = [i for d in outputs["retrieved_indices"][0].tolist()
                for i in hash_ids(DOCUMENTS[d], vocab)] + question
    assert ids[0][mask[0] == 1].tolist() == expected


def test_minilm_retrieves_the_document_that_answers(loaded):
    workload, model = loaded["rag:minilm+tiny:gpt2"]
    inputs = workload.make_inputs(len(QUESTIONS), 32)
    outputs = workload.forward(model, inputs)
    assert outputs["retrieved_indices"][:, 0].tolist() == list(ANSWERS)


def test_tiny_rag_builds_are_identical(loaded):
    workload, model = loaded["tiny:rag"]
    assert_same_weights(model, workload.load_model())


@pytest.mark.slow
def test_generated_files_pass_ruff_and_pytest(tmp_path):
    # 3 shared checks + top-k, query, documents-reach-generator, generate: 7 per model
    generate_and_run(SPECS, tmp_path / "generated", expect_passed=7 * len(SPECS))


@pytest.mark.slow
def test_benchmark_records_a_success(tmp_db):
    from hwaccel.kit.tiny import tiny_config

    # benchmark_one also checks the JSON report's p50 against the row's
    row = benchmark_one("tiny:rag", tmp_db, "--batch-size", "2", "--seq-len", "16", *FAST)
    assert row["hardware"] == "cpu"
    assert (row["model_id"], row["model_type"]) == ("tiny:rag", "rag")
    assert (row["family"], row["subfamily"], row["pipeline"]) == ("text_generation",
                                                                  "seq2seq", "rag")
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["iterations"] >= 5 and row["batch_size"] == 2 and row["seq_len"] == 16
    assert row["load_time"] > 0 and row["threads"] == 1
    config = tiny_config("rag")
    assert json.loads(row["output_shape"]) == {
        "logits": [2, 16, config.generator.vocab_size],
        "retrieval_scores": [2, config.n_docs], "retrieved_indices": [2, config.n_docs]}


def test_left_packing_moves_padding_first_keeping_the_order_as_a_stable_sort_would():
    """The packing is written without ``argsort`` (its stable Sort does not export to ONNX),
    so it is checked against the stable sort it replaces, on random masks."""
    import torch

    from hwaccel_pipeline_rag.retrieval import left_pack

    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        mask = (torch.rand(3, 9, generator=generator) > 0.4).long()
        ids = torch.randint(1, 100, (3, 9), generator=generator)
        order = torch.argsort(mask, dim=-1, stable=True)
        packed_ids, packed_mask = left_pack(ids, mask)
        assert torch.equal(packed_ids, ids.gather(-1, order))
        assert torch.equal(packed_mask, mask.gather(-1, order))
