"""Model references, the Hugging Face cache, tiny configs, and bad input on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from conftest import run_cli
from hwaccel.errors import ModelReferenceError
from hwaccel.models.resolve import resolve_model

MISSING = "./no-such-model-folder-4f1c9e"


@pytest.fixture
def bert_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bert-model"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertModel"]}), encoding="utf-8")
    return folder


@pytest.fixture
def malformed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text('{\n  "model_type": "bert",\n  "architectures": [\n}\n',
                                        encoding="utf-8")
    return folder


# -- resolve_model ---------------------------------------------------------------------------


def test_tiny_reference():
    ref = resolve_model("tiny:bert")
    assert (ref.kind, ref.model_type, ref.signal) == ("tiny", "bert", "config")
    assert ref.is_tiny


def test_unknown_tiny_type():
    with pytest.raises(ModelReferenceError, match="nosuchtype"):
        resolve_model("tiny:nosuchtype")


def test_local_folder(bert_folder):
    ref = resolve_model(str(bert_folder))
    assert ref.kind == "local"
    assert Path(ref.path) == bert_folder.resolve()
    assert ref.model_type == "bert"
    assert ref.architectures == ("BertModel",)
    assert ref.signal == "local"
    assert ref.path is not None


def test_malformed_config(malformed_folder):
    with pytest.raises(ModelReferenceError) as excinfo:
        resolve_model(str(malformed_folder))
    message = str(excinfo.value)
    assert "malformed" in message
    assert "line 4" in message  # the "}" that closes a list that was never given an item
    assert "\n" not in message


def test_config_that_is_a_list(tmp_path):
    (tmp_path / "config.json").write_text('[{"model_type": "bert"}]', encoding="utf-8")
    with pytest.raises(ModelReferenceError, match="JSON object"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("config", [{"model_type": 7}, {"architectures": "BertModel"}])
def test_config_with_wrong_field_types(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelReferenceError, match="malformed"):
        resolve_model(str(tmp_path))


def test_config_that_is_not_utf8(tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"model_type": "\xff\xfe"}')
    with pytest.raises(ModelReferenceError, match="malformed"):
        resolve_model(str(tmp_path))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelReferenceError, match="config.json"):
        resolve_model(str(tmp_path))


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ModelReferenceError, match="folder"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_missing_path():
    with pytest.raises(ModelReferenceError, match="no such model folder"):
        resolve_model("./does/not/exist")


@pytest.mark.parametrize("spec", ["bad name!!", "a/b/c", "org/", ""])
def test_not_a_reference(spec):
    with pytest.raises(ModelReferenceError, match="reference"):
        resolve_model(spec)


def test_minilm_alias():
    ref = resolve_model("minilm")
    assert ref.kind == "alias"
    assert ref.path is not None and (Path(ref.path) / "config.json").is_file()
    assert ref.model_type == "bert"
    assert ref.path is not None


# -- the Hugging Face cache ------------------------------------------------------------------


def make_cached(hub: Path, hub_id: str, commit: str, config: dict, ref: bool = True) -> Path:
    repo = hub / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if ref:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit + "\n", encoding="utf-8")
    return snapshot


def test_hub_id_in_the_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    # an older snapshot that refs/main does not point at
    make_cached(hub, "org/name", "f" * 40, {"model_type": "t5"}, ref=False)
    snapshot = make_cached(hub, "org/name", commit,
                           {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    ref = resolve_model("org/name")
    assert (ref.kind, ref.signal) == ("hub", "hf-cache")
    assert Path(ref.path) == snapshot
    assert ref.model_type == "gpt2"
    assert ref.path is not None


def test_hub_id_in_the_cache_without_refs(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    snapshot = make_cached(hub, "org/other", "a" * 40, {"model_type": "bert"}, ref=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    ref = resolve_model("org/other")
    assert Path(ref.path) == snapshot
    assert ref.signal == "hf-cache"


def test_hub_id_not_in_the_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    ref = resolve_model("org/absent-model")
    assert ref.kind == "hub"
    assert ref.path is None
    assert ref.path is None and not ref.is_tiny
    with pytest.raises(ModelReferenceError, match="not in the local Hugging Face cache"):
        ref.load_config()


# -- tiny configs ----------------------------------------------------------------------------

TINY_SIZES = {
    # model type: (width, layer counts) attribute names of its config
    "bert": ("hidden_size", ("num_hidden_layers",)),
    "gpt2": ("n_embd", ("n_layer",)),
    "t5": ("d_model", ("num_layers", "num_decoder_layers")),
}
MODEL_CLASSES = {"bert": "BertModel", "gpt2": "GPT2Model", "t5": "T5Model"}


@pytest.mark.parametrize("model_type", sorted(TINY_SIZES))
def test_tiny_config_is_tiny(model_type):
    from hwaccel.kit.tiny import tiny_config

    config = tiny_config(model_type)
    width, layers = TINY_SIZES[model_type]
    assert 0 < getattr(config, width) <= 32
    for name in layers:
        assert 0 < getattr(config, name) <= 2
    assert 0 < config.vocab_size <= 1024
    token_ids = {name: getattr(config, name, None) for name in dir(config)
                 if name.endswith("token_id")}
    token_ids.update({k: v for k, v in config.to_dict().items() if k.endswith("token_id")})
    for name, value in token_ids.items():
        if isinstance(value, int):
            assert 0 <= value < config.vocab_size, (name, value)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sorted(MODEL_CLASSES))
def test_tiny_model_is_reproducible(model_type):
    import torch
    import transformers

    from hwaccel.kit.tiny import tiny_config

    cls = getattr(transformers, MODEL_CLASSES[model_type])

    def build(seed: int) -> dict:
        torch.manual_seed(seed)
        return cls(tiny_config(model_type)).state_dict()

    first, second, other = build(0), build(0), build(1)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)  # the seed matters
    assert sum(t.numel() for t in first.values()) < 200_000


# -- bad input on the command line -----------------------------------------------------------


def assert_one_error_line(proc, code: int = 2) -> str:
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hwaccel: error:"), lines[0]
    assert proc.returncode == code, proc.stderr
    return lines[0]


def test_classify_malformed_config(malformed_folder):
    line = assert_one_error_line(run_cli("classify", str(malformed_folder), timeout=60))
    assert "malformed" in line


def test_classify_unknown_tiny_type():
    line = assert_one_error_line(run_cli("classify", "tiny:nosuchtype", timeout=60))
    assert "nosuchtype" in line


def test_classify_missing_path():
    assert not Path(MISSING).exists()
    line = assert_one_error_line(run_cli("classify", MISSING, timeout=60))
    assert "no such model folder" in line


def test_generate_unknown_tiny_type(tmp_path):
    out = tmp_path / "generated"
    line = assert_one_error_line(run_cli("generate", "tiny:nosuchtype", "--backend", "cpu",
                                         "--out", str(out), timeout=60))
    assert "nosuchtype" in line
    assert not out.exists() or not any(out.iterdir())


def test_generate_writes_nothing_when_a_later_model_is_bad(tmp_path):
    out = tmp_path / "generated"
    line = assert_one_error_line(run_cli("generate", "tiny:bert", "tiny:nosuchtype",
                                         "--backend", "cpu", "--out", str(out), timeout=60))
    assert "nosuchtype" in line
    assert not out.exists() or not any(out.iterdir())


def test_benchmark_missing_model_runs_nothing(tmp_path):
    assert not Path(MISSING).exists()
    db = tmp_path / "bench.duckdb"
    line = assert_one_error_line(run_cli("benchmark", MISSING, "--backend", "cpu",
                                         "--db", str(db), timeout=90))
    assert "no such model folder" in line
    if db.exists():
        with duckdb.connect(str(db), read_only=True) as conn:
            tables = {r[0] for r in conn.execute("SHOW TABLES").fetchall()}
            if "hardware_results" in tables:
                assert conn.execute("SELECT count(*) FROM hardware_results").fetchone() == (0,)


@pytest.mark.parametrize("options", [["--backend", "nosuch"],
                                     ["--backend", "cpu", "--iterations", "0"],
                                     ["--backend", "cpu", "--timeout", "0"]])
def test_benchmark_bad_options_run_nothing(tmp_path, options):
    db = tmp_path / "bench.duckdb"
    assert_one_error_line(run_cli("benchmark", "tiny:bert", *options, "--db", str(db),
                                  timeout=90))
    assert not db.exists()


def test_generate_unknown_backend_writes_nothing(tmp_path):
    out = tmp_path / "generated"
    proc = run_cli("generate", "tiny:bert", "--backend", "cpu", "--backend", "nosuch",
                   "--out", str(out), timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwaccel: error:"), proc.stderr
    assert "nosuch" in lines[0]
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_classify_good_and_bad_together():
    assert not Path(MISSING).exists()
    proc = run_cli("classify", "tiny:bert", MISSING, "--json", timeout=60)
    line = assert_one_error_line(proc)
    assert "no such model folder" in line
    entries = json.loads(proc.stdout)
    bert = next(e for e in entries if e.get("model") == "tiny:bert")
    # TAXONOMY.md: bert -> embedding / masked_lm / text, decided by its config
    assert (bert["family"], bert["subfamily"], bert["pipeline"]) == ("embedding", "masked_lm",
                                                                     "text")
    assert bert["model_type"] == "bert"
    assert bert["signal"] == "config"
    assert bert["confidence"] == 1.0


def test_damaged_auto_table_cache_is_rebuilt(tmp_path, monkeypatch):
    from hwaccel.kit import autotables
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path))
    version = autotables.transformers_version()
    cache = tmp_path / f"autotables-transformers-{version}.json"
    cache.write_text(json.dumps({"format": autotables._FORMAT, "tasks_by_type": {}}))
    autotables.load.cache_clear()
    try:
        assert "CAUSAL_LM" in autotables.load().tasks("gpt2")
        assert "gpt2" in json.loads(cache.read_text())["tasks_by_type"]
    finally:
        autotables.load.cache_clear()
