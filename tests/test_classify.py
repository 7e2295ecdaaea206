"""Classification gives the TAXONOMY.md labels, with the signal that decided them.

Expected labels are copied from shared/TAXONOMY.md's examples, not computed by the code.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from hwaccel.models.classify import classify, model_type_from_name
from hwaccel.plugins import load

# (model_type, family, subfamily or None to skip, pipeline) from TAXONOMY.md's examples
TAXONOMY_EXAMPLES = [
    ("bert", "embedding", "masked_lm", "text"),
    ("gpt2", "text_generation", "causal_lm", "text"),
    ("t5", "text_generation", "seq2seq", "text"),
    ("vit", "vision", None, "vision"),
    ("clip", "multimodal", None, "vision-text"),
    ("siglip", "multimodal", None, "vision-text"),
    ("blip", "multimodal", None, "vision-text"),
    ("owlvit", "multimodal", None, "vision-text"),
    ("llava", "multimodal", None, "multimodal"),
    ("paligemma", "multimodal", None, "multimodal"),
    ("idefics2", "multimodal", None, "multimodal"),
    ("qwen2_vl", "multimodal", None, "multimodal"),
    ("whisper", "audio", None, "audio"),
    ("wav2vec2", "audio", None, "audio"),
    ("mixtral", "text_generation", None, "moe"),
    ("deepseek_v3", "text_generation", None, "moe"),
    ("switch_transformers", "text_generation", None, "moe"),
    ("mamba", "text_generation", None, "state-space"),
    ("jamba", "text_generation", None, "state-space"),
    ("rwkv", "text_generation", None, "state-space"),
    ("rag", "text_generation", "seq2seq", "rag"),
]


@pytest.mark.parametrize("model_type, family, subfamily, pipeline", TAXONOMY_EXAMPLES)
def test_taxonomy_examples(plugins, model_type, family, subfamily, pipeline):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert (result.family, result.pipeline) == (family, pipeline)
    if subfamily:
        assert result.subfamily == subfamily
    assert result.signal == "config"


@pytest.mark.parametrize("model_type, architecture", [
    ("bert", "encoder-only"), ("roberta", "encoder-only"), ("distilbert", "encoder-only"),
    ("gpt2", "decoder-only"), ("llama", "decoder-only"), ("t5", "encoder-decoder"),
    ("bart", "encoder-decoder")])
def test_text_pipeline_claims_with_architecture_and_workload(plugins, model_type, architecture):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert result.plugin == "text" and result.distribution == "hwaccel-pipeline-text"
    assert result.architecture == architecture
    assert result.workload and result.confidence == 1.0


def test_unclaimed_pipeline_is_reported_with_the_reason(monkeypatch):
    monkeypatch.setenv("HWACCEL_DISABLE_PLUGINS", "vision")
    result = classify("tiny:vit", load(strict=True)).classification
    assert (result.family, result.pipeline) == ("vision", "vision")
    assert result.workload is None and result.plugin is None
    assert "no installed plugin claims pipeline 'vision'" in result.reason


def test_cli_classifies_hub_names_offline_by_name():
    proc = run_cli("classify", "bert-base-uncased", "gpt2", "t5-small", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(proc.stdout)}
    expected = {"bert-base-uncased": ("embedding", "masked_lm", "text", "encoder-only"),
                "gpt2": ("text_generation", "causal_lm", "text", "decoder-only"),
                "t5-small": ("text_generation", "seq2seq", "text", "encoder-decoder")}
    for model, labels in expected.items():
        row = rows[model]
        assert (row["family"], row["subfamily"], row["pipeline"], row["architecture"]) == labels
        assert row["signal"] == "name"
        assert 0 < row["confidence"] < 1  # weaker than a config


@pytest.mark.parametrize("name, model_type", [
    ("bert-base-uncased", "bert"), ("distilbert-base-uncased", "distilbert"),
    ("FacebookAI/xlm-roberta-base", "xlm-roberta"), ("facebook/opt-125m", "opt"),
    ("meta-llama/Llama-2-7b-hf", "llama"), ("EleutherAI/gpt-neo-125m", "gpt_neo"),
    ("mistralai/Mixtral-8x7B-v0.1", "mixtral"), ("openai/whisper-tiny", "whisper"),
    ("google/vit-base-patch16-224", "vit"), ("sentence-transformers/all-MiniLM-L6-v2", "bert"),
    ("hf-internal-testing/tiny-random-gpt2", "gpt2"), ("unrelated-words-only", None)])
def test_model_type_from_name(name, model_type):
    from hwaccel.kit import autotables
    assert model_type_from_name(name, autotables.load().config_types) == model_type


def test_local_folder_config_decides_over_the_name(plugins, tmp_path):
    folder = tmp_path / "gpt2-looking-name"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = classify(str(folder), plugins).classification
    assert (result.family, result.signal, result.confidence) == ("embedding", "local", 1.0)


def test_architectures_decide_when_model_type_is_missing(plugins, tmp_path):
    config = {"architectures": ["T5ForConditionalGeneration"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = classify(str(tmp_path), plugins).classification
    assert (result.model_type, result.subfamily) == ("t5", "seq2seq")


def test_class_and_task_evidence(plugins):
    by_class = classify("my-org/private-model", plugins, model_class="GPT2LMHeadModel")
    assert (by_class.classification.model_type, by_class.classification.signal) == (
        "gpt2", "class")
    by_task = classify("my-org/private-model", plugins, tasks=("fill-mask",)).classification
    assert (by_task.family, by_task.subfamily, by_task.signal) == (
        "embedding", "masked_lm", "task")
    assert by_task.confidence < by_class.classification.confidence


def test_minilm_alias_is_the_real_shipped_model(plugins):
    result = classify("minilm", plugins).classification
    assert (result.family, result.model_type, result.model_class, result.signal) == (
        "embedding", "bert", "BertModel", "local")


def test_explicit_task_outranks_the_name(plugins):
    """TAXONOMY.md: class names and tasks as callers pass them beat the name alone."""
    result = classify("acme/bert-style-generator", plugins,
                      tasks=("text-generation",)).classification
    assert (result.family, result.subfamily, result.signal) == (
        "text_generation", "causal_lm", "task")


@pytest.mark.parametrize("name, model_type", [
    ("EleutherAI/gpt-j-6b", "gptj"), ("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl"),
    ("Salesforce/blip2-opt-2.7b", "blip-2"), ("distil-whisper/distil-large-v3", "whisper"),
    ("ProsusAI/finbert", "bert"), ("Qwen/Qwen3-30B-A3B", "qwen3_moe"),
    ("Qwen/Qwen1.5-MoE-A2.7B", "qwen2_moe"), ("meta-llama/Llama3-8B", "llama"),
    ("tiiuae/falcon-mamba-7b", "falcon_mamba"), ("google/gemma-2-9b", "gemma2"),
    ("Helsinki-NLP/opus-mt-en-de", "marian"), ("microsoft/trocr-base", "vision-encoder-decoder"),
    ("acme/optimus-prime", None)])
def test_model_type_from_name_joins_words_and_knows_naming_patterns(name, model_type):
    from hwaccel.kit import autotables
    assert model_type_from_name(name, autotables.load().config_types) == model_type


def test_class_name_outside_the_auto_tables_falls_back_to_its_prefix(plugins):
    result = classify("acme/encoder", plugins, model_class="WhisperEncoder")
    assert (result.classification.model_type, result.classification.signal) == ("whisper", "class")


@pytest.mark.parametrize("config, pipeline", [
    ({"model_type": "mixtral"}, "moe"),  # no expert key: the class default (8) counts
    ({"model_type": "mixtral", "num_local_experts": 1}, "text"),
    ({"model_type": "llama", "text_config": {"num_experts": 4}}, "moe")])
def test_expert_count_comes_from_the_config_else_its_defaults(plugins, tmp_path, config,
                                                               pipeline):
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert classify(str(tmp_path), plugins).classification.pipeline == pipeline


def test_hf_cache_configs_decide_for_uninformative_names(plugins, tmp_path, monkeypatch):
    """Only config.json files in the cache; names say nothing; the cache is the signal."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    cached = {"acme/model-a": ("whisper", "audio"), "acme/model-b": ("clip", "vision-text"),
              "acme/model-c": ("mamba", "state-space"), "acme/model-d": ("bert", "text")}
    for hub_id, (model_type, _) in cached.items():
        snapshot = tmp_path / f"models--{hub_id.replace('/', '--')}" / "snapshots" / "abc123"
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps({"model_type": model_type}))
    for hub_id, (model_type, pipeline) in cached.items():
        result = classify(hub_id, plugins).classification
        assert (result.model_type, result.pipeline, result.signal) == (
            model_type, pipeline, "hf-cache"), hub_id
        assert result.confidence == 1.0


def test_config_with_an_unknown_model_type_is_unknown(plugins, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    result = classify(str(tmp_path), plugins).classification
    assert (result.family, result.pipeline, result.workload) == ("unknown", None, None)
    assert result.reason


def test_cli_from_file_and_arguments_together(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("# models to check\ngpt2\n\n  tiny:bert   # trailing comment\n")
    proc = run_cli("classify", "t5-small", "--from-file", str(listing), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["model"] for r in json.loads(proc.stdout)] == ["t5-small", "gpt2", "tiny:bert"]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), (b"\xff\xfe\x00junk\x80", "not UTF-8")])
def test_cli_from_file_errors_are_one_line(tmp_path, content, message):
    listing = tmp_path / "models.txt"
    if content is not None:
        listing.write_bytes(content)
    proc = run_cli("classify", "--from-file", str(listing))
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cli_without_models_is_a_usage_error():
    proc = run_cli("classify")
    assert proc.returncode == 2 and "no models given" in proc.stderr


def test_hub_name_accuracy_on_the_benchmark_list(plugins):
    """benchmarks/hub_models.tsv (hand-labelled by TAXONOMY.md): 98% with class, 90% by name."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "name_accuracy.py"
    spec = importlib.util.spec_from_file_location("name_accuracy", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.read_list(module.DEFAULT_LIST)
    assert len(rows) > 250

    def labels(name: str, model_class: str | None) -> tuple[str, str | None]:
        result = classify(name, plugins, model_class=model_class).classification
        return result.family, result.pipeline

    with_class = sum(labels(name, cls) == (fam, pipe) for name, cls, fam, pipe in rows)
    name_alone = sum(labels(name, None) == (fam, pipe) for name, _, fam, pipe in rows)
    assert with_class / len(rows) >= 0.98 and name_alone / len(rows) >= 0.90, (
        with_class, name_alone, len(rows))
