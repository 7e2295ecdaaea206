"""Hostile model configs, references, model lists and cache folders (issue 16).

Each bad input must give one ``hwaccel: error:`` line and exit 2, in every command that
takes a model (classify, generate, resources, benchmark), never an internal error (exit 70),
a traceback or a hang; nothing is built or benchmarked from a refused config.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import run_cli
from hwaccel.cli import main

BERT = {"model_type": "bert", "architectures": ["BertModel"]}


def _commands(out: Path) -> dict[str, list[str]]:
    """The argument lists of every command that takes model references (before the model)."""
    return {"classify": ["classify"],
            "generate": ["generate", "--backend", "cpu", "--out", str(out)],
            "resources": ["resources", "--backend", "cpu", "--"],
            "benchmark": ["benchmark", "--backend", "cpu", "--"]}


COMMANDS = ("classify", "generate", "resources", "benchmark")


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """Assert exit 2 and a single ``hwaccel:`` line on stderr, an error; return that line.
    (Progress lines, such as a runtime baseline measured once, may come before it.)"""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hwaccel")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hwaccel: error: "), err
    assert "Traceback" not in err and err.endswith(lines[0] + "\n"), err
    return lines[0]


def _run(command: str, reference: str, tmp_path: Path) -> int:
    return main([*_commands(tmp_path / "generated")[command], reference])


BAD_CONFIGS = {
    "string width": ({**BERT, "hidden_size": "x"}, "hidden_size must be an integer"),
    "fractional width": ({**BERT, "hidden_size": 2.5}, "hidden_size must be an integer"),
    "boolean layers": ({**BERT, "num_hidden_layers": True}, "num_hidden_layers must be an"),
    "zero heads": ({**BERT, "num_attention_heads": 0}, "num_attention_heads is 0"),
    "negative vocabulary": ({**BERT, "vocab_size": -5}, "vocab_size is -5"),
    "a billion layers": ({**BERT, "num_hidden_layers": 10**9}, "num_hidden_layers is"),
    "a million layers": ({**BERT, "num_hidden_layers": 10**6}, "num_hidden_layers is"),
    "400-digit vocabulary": ({**BERT, "vocab_size": 10**400}, "beyond 64 bits"),
    "nested sub-config": ({"model_type": "clip", "architectures": ["CLIPModel"],
                           "vision_config": {"patch_size": "x"}},
                          "vision_config.patch_size must be an integer"),
}


def _write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_values_are_one_usage_line(command, case, tmp_path, capsys):
    config, expected = BAD_CONFIGS[case]
    folder = _write_config(tmp_path / "model", json.dumps(config))
    line = _one_error_line(capsys, _run(command, str(folder), tmp_path))
    assert str(folder / "config.json") in line and expected in line
    assert not (tmp_path / "generated").exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("text, expected", [
    ('{"model_type": "bert", "hidden_size": NaN}', "NaN"),
    ('{"model_type": "bert", "hidden_size": Infinity}', "Infinity"),
    ('{"model_type": "bert", "layer_norm_eps": 1e400}', "beyond floating point range"),
    ('{"model_type": "bert", "x": ' + "[" * 2000 + "]" * 2000 + "}", "nested deeper"),
    ('{"model_type": "bert", "x": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
])
def test_malformed_json_is_one_usage_line(command, text, expected, tmp_path, capsys):
    folder = _write_config(tmp_path / "model", text)
    line = _one_error_line(capsys, _run(command, str(folder), tmp_path))
    assert expected in line


def test_an_oversized_config_is_refused_without_parsing(tmp_path, capsys):
    from hwaccel.models.config_checks import MAX_CONFIG_BYTES

    padding = " " * MAX_CONFIG_BYTES
    folder = _write_config(tmp_path / "model", '{"model_type": "bert"' + padding + "}")
    line = _one_error_line(capsys, main(["classify", str(folder)]))
    assert "larger than" in line


def test_heads_that_the_model_needs_to_divide_the_width_are_the_configs_error(tmp_path,
                                                                                capsys):
    """BERT refuses 12 heads over a width of 100 when built: a usage error naming the model."""
    folder = _write_config(tmp_path / "model", json.dumps(
        {**BERT, "hidden_size": 100, "num_attention_heads": 12}))
    line = _one_error_line(capsys, main(["resources", str(folder), "--backend", "cpu"]))
    assert f"cannot build {folder}" in line and "attention heads" in line


def test_a_config_that_transformers_refuses_is_one_usage_line(tmp_path, capsys):
    """768.0 passes hwaccel's checks (published configs hold integral floats) and transformers'
    field types refuse it for BERT's width: the refusal is the config's error, not exit 70."""
    folder = _write_config(tmp_path / "model", json.dumps({**BERT, "hidden_size": 768.0}))
    line = _one_error_line(capsys, main(["resources", str(folder), "--backend", "cpu"]))
    assert f"transformers refuses the config of {folder}" in line and "hidden_size" in line


def test_a_published_config_is_held_to_the_same_checks():
    from hwaccel.errors import ModelReferenceError
    from hwaccel.types import ModelRef

    ref = ModelRef(spec="org/model", kind="hub", model_type="bert",
                   config={"model_type": "bert", "num_hidden_layers": 10**6})
    with pytest.raises(ModelReferenceError, match="num_hidden_layers is 1000000"):
        ref.load_config()


# the defaults of these model types are what published checkpoints hold: each must pass the
# checks (heads that do not divide the width, a float position count, a layer count per
# part, 16,384 experts, a head_dim of 0)
REAL_TYPES = ("bert", "gpt2", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "gemma2",
              "gemma3", "t5", "mt5", "umt5", "bart", "whisper", "wav2vec2", "clip", "siglip",
              "llava", "vit", "swin", "convnext", "resnet", "detr", "mamba", "mamba2", "jamba",
              "falcon", "phi3", "deepseek_v3", "glm4_moe", "glm4_moe_lite", "glm5_next",
              "qwen3_omni_moe", "reformer", "lxmert", "doge", "musicflamingo", "blip_2",
              "idefics3", "bloom", "gpt_neox", "opt")


def test_real_default_configs_pass_the_checks(tmp_path):
    from transformers import CONFIG_MAPPING

    from hwaccel.models.resolve import read_config

    checked = 0
    for model_type in REAL_TYPES:
        if model_type not in CONFIG_MAPPING:
            continue
        folder = _write_config(tmp_path / model_type,
                               CONFIG_MAPPING[model_type]().to_json_string())
        assert read_config(folder)["model_type"] == model_type
        checked += 1
    assert checked >= 30


def test_resources_of_a_huge_but_valid_config_is_computed_quickly(tmp_path, capsys):
    """Sizes near the limits still give a figure, computed in seconds (nothing per element)."""
    folder = _write_config(tmp_path / "model", json.dumps(
        {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 48,
         "n_embd": 2**17, "n_head": 1024, "n_positions": 2**20, "vocab_size": 2**24}))
    start = time.monotonic()
    code = main(["resources", str(folder), "--backend", "cpu", "--json"])
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    assert code == 0
    parameters = json.loads(out)["footprints"][str(folder)]["parameters"]
    assert parameters > 48 * 12 * 2**34  # 12 x width^2 per layer at least
    assert elapsed < 60


def test_a_footprint_that_takes_too_long_is_refused(tmp_path, capsys, monkeypatch):
    """Switch Transformers builds one module per expert: within the size limits, a config can
    still take minutes on the meta device; the footprint's time limit ends it with one line
    (here the limit is lowered so that 512 experts exceed it)."""
    from hwaccel.estimates import resources
    monkeypatch.setattr(resources, "FOOTPRINT_SECONDS", 0.2)
    folder = _write_config(tmp_path / "model", json.dumps(
        {"model_type": "switch_transformers", "num_layers": 4, "num_decoder_layers": 4,
         "architectures": ["SwitchTransformersForConditionalGeneration"],
         "num_experts": 512, "d_model": 64, "d_ff": 64, "num_heads": 4, "d_kv": 16}))
    start = time.monotonic()
    line = _one_error_line(capsys, main(["resources", str(folder), "--backend", "cpu"]))
    assert "too large to count" in line and "0.2 s" in line
    assert time.monotonic() - start < 30


# ---- references --------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("reference, expected", [
    ("a" * 100_000, "100,000 characters"),
    ("/" + "a" * 100_000, "100,001 characters"),
    ("tiny:" + "a" * 100_000, "100,005 characters"),
    ("./" + "a" * 300, "File name too long"),
    ("org/" + "a" * 300, "not a model reference"),
    ("tiny:bert\u2028tiny:gpt2", "U+2028"),
    ("min\u0085ilm", "U+0085"),
])
def test_unusable_references_are_one_usage_line(command, reference, expected, tmp_path,
                                                capsys):
    line = _one_error_line(capsys, _run(command, reference, tmp_path))
    assert expected in line and len(line) < 1_500


# ---- --from-file -------------------------------------------------------------------------


def test_from_file_refuses_a_fifo_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "models"
    os.mkfifo(fifo)
    line = _one_error_line(capsys, main(["classify", "--from-file", str(fifo)]))
    assert "not a regular file" in line


def test_from_file_refuses_a_device(capsys):
    line = _one_error_line(capsys, main(["classify", "--from-file", "/dev/zero"]))
    assert "not a regular file" in line


def test_from_file_never_prints_the_file(monkeypatch, capsys):
    monkeypatch.setenv("HWACCEL_TEST_SECRET", "do-not-print-me")
    line = _one_error_line(capsys, main(["classify", "--from-file", "/proc/self/environ"]))
    assert "line 1" in line and "do-not-print-me" not in line and "HWACCEL" not in line


def test_from_file_bounds_what_it_reads(tmp_path, capsys):
    listing = tmp_path / "models.txt"
    listing.write_text("tiny:bert\n" * 200_000)
    line = _one_error_line(capsys, main(["classify", "--from-file", str(listing)]))
    assert "larger than 1 MiB" in line


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c"])
def test_from_file_splits_lines_on_newlines_only(separator, tmp_path, capsys):
    listing = tmp_path / "models.txt"
    listing.write_text(f"tiny:bert\ntiny:gpt2{separator}minilm\n", encoding="utf-8")
    line = _one_error_line(capsys, main(["classify", "--from-file", str(listing)]))
    assert "line 2 is not a model reference" in line
    assert f"U+{ord(separator):04X}" in line


def test_from_file_reads_crlf_lines(tmp_path, capsys):
    listing = tmp_path / "models.txt"
    listing.write_bytes(b"tiny:bert\r\n# a comment\r\ntiny:gpt2 # trailing\r\n")
    assert main(["classify", "--from-file", str(listing), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["model"] for row in rows] == ["tiny:bert", "tiny:gpt2"]


# ---- the cache folder --------------------------------------------------------------------


@pytest.mark.parametrize("variable, under_file", [
    ("HWACCEL_CACHE_DIR", True), ("HWACCEL_CACHE_DIR", False), ("XDG_CACHE_HOME", True)])
def test_an_unusable_cache_folder_is_one_line_naming_its_variable(variable, under_file,
                                                                   tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    folder = str(blocker / "cache") if under_file else "/proc/hwaccel-cache"
    env = {variable: folder}
    if variable != "HWACCEL_CACHE_DIR":
        env["HWACCEL_CACHE_DIR"] = ""
    proc = run_cli("classify", "tiny:bert", env=env, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("hwaccel: error: cannot use the cache")
    assert variable in lines[0] and folder in lines[0]
