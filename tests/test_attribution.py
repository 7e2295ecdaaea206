"""Whose failure a benchmark row names, end to end through ``hwaccel benchmark``.

Real local checkpoints saved with ``save_pretrained``: base architectures of five pipelines
run on the CPU and on OpenVINO; a checkpoint whose own config makes its forward call fail
is the model's failure on inputs its own tokenizer made, and hwaccel's when hwaccel made the
inputs (it could have made ones the model takes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ONE_THREAD, run_cli

FAST = ("--iterations", "2", "--min-seconds", "0", "--warmup", "0")
BASE_CLASSES = {"bert": "BertModel", "t5": "T5Model", "vit": "ViTModel",
                "whisper": "WhisperModel", "mamba": "MambaModel"}
WORDS = ("which hardware should this model run on the quick brown fox jumps over lazy dog "
         "hwaccel measures instead of guessing benchmarks need warm up percentiles and a "
         "fixed seed").split()


def save(model_type: str, class_name: str, folder: Path, **overrides) -> Path:
    """A tiny ``class_name`` of ``model_type`` saved as a checkpoint folder."""
    import torch
    import transformers

    from hwaccel.kit.tiny import tiny_config

    config = tiny_config(model_type)
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    getattr(transformers, class_name)(config).save_pretrained(folder)
    return folder


def save_tokenizer(folder: Path) -> None:
    """A WordPiece tokenizer of the words above, saved beside the checkpoint."""
    from transformers import BertTokenizerFast

    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)


def benchmark(models: list[str], backends: list[str], db: Path) -> list[dict]:
    args = [a for b in backends for a in ("--backend", b)]
    proc = run_cli("benchmark", *models, *args, *FAST, "--threads", "1", "--db", str(db),
                   "--json", env=ONE_THREAD, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)["results"]


@pytest.mark.slow
def test_base_architecture_checkpoints_run_on_cpu_and_openvino(tmp_path):
    folders = [str(save(t, c, tmp_path / c)) for t, c in BASE_CLASSES.items()]
    results = benchmark(folders, ["cpu", "openvino"], tmp_path / "db.duckdb")
    assert len(results) == 2 * len(folders)
    for result in results:
        assert result["success"], (result["model"], result["backend"], result["error"])
        assert result["p50_ms"] > 0


def test_a_checkpoint_failing_on_its_tokenizers_inputs_is_the_models(tmp_path):
    # positions beyond the model's own table: the default sequence of 32 tokens overflows it
    with_tokenizer = save("bert", "BertModel", tmp_path / "tokenized", max_position_embeddings=8)
    save_tokenizer(with_tokenizer)
    bare = save("bert", "BertModel", tmp_path / "bare", max_position_embeddings=8)
    results = {Path(r["model"]).name: r
               for r in benchmark([str(with_tokenizer), str(bare)], ["cpu"],
                                  tmp_path / "db.duckdb")}
    tokenized, synthetic = results["tokenized"], results["bare"]
    assert not tokenized["success"] and not synthetic["success"]
    assert tokenized["error_category"] == "model", tokenized["error"]
    assert synthetic["error_category"] == "harness", synthetic["error"]
    for result in (tokenized, synthetic):  # raised in the model's own code on the CPU
        assert result["error"].startswith("reference: "), result["error"]
        assert "transformers.models.bert.modeling_bert" in result["error"]
