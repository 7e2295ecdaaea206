"""The predecessor's HardwareAwareModelClassifier API over hwaccel's measured parts."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from conftest import cpu_record, detection_of, record_result
from hwaccel import HardwareAwareModelClassifier, get_hardware_aware_model_classification
from hwaccel.errors import UsageError
from hwaccel.estimates.resources import Estimator


@pytest.fixture(scope="module")
def not_web():
    """The installed plugins but the web backend, whose runtime baselines take minutes to
    measure (a browser per job; tests/test_backend_web.py covers it)."""
    from hwaccel.plugins import load

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HWACCEL_DISABLE_PLUGINS", "web")
        return load()


@pytest.fixture(scope="module")
def classifier(not_web, tmp_path_factory):
    return HardwareAwareModelClassifier(db_path=tmp_path_factory.mktemp("db") / "h.duckdb",
                                        plugins=not_web)


def test_classify_model_gives_the_predecessors_keys_from_measured_parts(classifier):
    result = classifier.classify_model("tiny:bert", tasks=["fill-mask"],
                                       methods=["forward"])
    assert (result["family"], result["subfamily"], result["pipeline"]) == (
        "embedding", "masked_lm", "text")
    assert result["model_name"] == "tiny:bert" and result["confidence"] == 1.0
    profile = result["hardware_profile"]
    assert profile["cpu"]["compatible"] is True and profile["cpu"]["system_available"] is True
    assert profile["cuda"]["system_available"] is False
    assert profile["cuda"]["reasons"][-1].startswith("cuda: absent — ")
    assert result["recommended_hardware"] in {"cpu", "openvino"}
    assert result["torch_device"] in {"cpu", "openvino:CPU"}
    package, name = result["recommended_template"].split("/")
    assert files(package).joinpath(name).is_file()
    needs = result["resource_requirements"]
    assert needs["min_memory_mb"] > 100 and needs["cpu_cores"] >= 1
    assert needs["recommended_seq_len"] == 512  # BERT's context: the most it will take
    assert needs["recommended_memory_mb"] > needs["min_memory_mb"]
    assert needs["batch_size"] == 1 and needs["max_batch_size"] > 1
    assert needs["phases"]["inference"] is not None and needs["source"] == "estimate"
    assert result["methods"] == ["forward"]


def test_an_override_marks_a_backend_incompatible_and_it_is_not_recommended(classifier):
    result = classifier.classify_model(
        "tiny:bert", hw_compat_override={"openvino": {"compatible": False},
                                         "cpu": {"compatible": True}})
    assert result["recommended_hardware"] == "cpu"
    assert result["hardware_profile"]["openvino"]["overridden"] is True


def test_compatible_models_for_hardware_leave_out_what_cannot_run_there(classifier):
    models = ["tiny:bert", "mistralai/Mixtral-8x7B-v0.1"]
    assert classifier.get_compatible_models_for_hardware(models, "cpu") == ["tiny:bert"]
    assert classifier.get_compatible_models_for_hardware(models[:1], "cuda") == ["tiny:bert"]
    with pytest.raises(UsageError, match="unknown backend 'webnn'"):
        classifier.get_compatible_models_for_hardware(models, "webnn")


def test_models_for_a_task_with_hardware_constraints(classifier):
    found = classifier.recommend_model_for_task("fill-mask", hardware_constraints=["cpu"])
    assert found["task"] == "fill-mask" and found["hardware_constraints"] == ["cpu"]
    names = [entry["model_name"] for entry in found["recommendations"]]
    assert "google-bert/bert-base-uncased" in names
    for entry in found["recommendations"]:
        assert entry["family"] == "embedding"
        assert entry["recommended_hardware"] in ("cpu", None)
        assert entry["source"].startswith("catalogue of ")


def test_the_resource_pool_config_adds_the_models_held_together(classifier):
    config = classifier.get_optimal_resource_pool_config(["tiny:bert", "minilm"],
                                                         backends=["cpu"])
    models = config["models"]
    assert set(models) == {"tiny:bert", "minilm"}
    assert all(m["device"] == "cpu" for m in models.values())
    needs = config["resource_requirements"]
    # one runtime for both: less than the two peaks added, more than the larger one
    assert needs["max_memory_mb"] < needs["total_memory_mb"] < sum(
        m["peak_mb"] for m in models.values())
    assert config["resource_pool_config"]["low_memory_mode"] is False
    assert config["hardware_recommendations"]["preferred_hardware"] == "cpu"


def test_low_memory_mode_is_advised_when_the_models_together_exceed_free_memory(plugins,
                                                                                tmp_path):
    cpu = cpu_record(memory_available_bytes=380 * 2**20)
    db = tmp_path / "history.duckdb"
    record_result(db, plugins, "tiny:gpt2", cpu, peak_mb=300.0)
    record_result(db, plugins, "minilm", cpu, peak_mb=390.0)
    estimator = Estimator(plugins, detection_of(cpu), db_path=db, measure=False)
    config = HardwareAwareModelClassifier(estimator=estimator) \
        .get_optimal_resource_pool_config(["minilm", "tiny:bert"])
    assert config["resource_pool_config"]["low_memory_mode"] is True
    assert config["resource_pool_config"]["memory_budget_mb"] == 380.0
    assert config["resource_pool_config"]["reason"].endswith("380 MiB free")
    # minilm alone (its measured 390 MiB) does not fit: it is counted, on the CPU, unplaced
    assert config["models"]["minilm"]["recommended_hardware"] is None
    assert config["models"]["minilm"]["peak_mb"] == 390.0


def test_classifications_are_kept_in_the_model_database(plugins, tmp_path, monkeypatch):
    path = tmp_path / "models.json"
    first = HardwareAwareModelClassifier(model_db_path=path, plugins=plugins, measure=False)
    first._classification("tiny:gpt2", None, ())
    stored = json.loads(path.read_text())["classifications"]
    assert len(stored) == 1 and next(iter(stored.values()))["family"] == "text_generation"

    import hwaccel.models.classify

    def refuse(*_args, **_kwargs):
        raise AssertionError("classified again instead of read from the model database")

    monkeypatch.setattr(hwaccel.models.classify, "classify_ref", refuse)
    second = HardwareAwareModelClassifier(model_db_path=path, plugins=plugins, measure=False)
    assert second._classification("tiny:gpt2", None, ())["subfamily"] == "causal_lm"


def test_the_module_level_function(not_web, tmp_path):
    result = get_hardware_aware_model_classification("tiny:gpt2", "GPT2LMHeadModel",
                                                     ["text-generation"], plugins=not_web,
                                                     db_path=tmp_path / "none.duckdb")
    assert result["family"] == "text_generation" and result["recommended_hardware"]
    assert result["resource_requirements"]["phases"]["generation"] is not None
