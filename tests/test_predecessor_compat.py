"""Predecessor compatibility: the seeds' model names, report shapes, flags and constants."""

from __future__ import annotations

import pytest

from conftest import cpu_record, detection_of, record_result
from hwaccel.catalogue import CatalogueEntry, find_entry
from hwaccel.errors import ModelReferenceError
from hwaccel.hardware_model_integration import HardwareAwareModelClassifier
from hwaccel.resources import Estimator


def _entry(model_id: str) -> CatalogueEntry:
    return CatalogueEntry(id=model_id, tasks=(), model_type="bert", architecture="BertModel")


def test_a_legacy_bare_name_resolves_to_the_one_catalogue_id_that_ends_in_it():
    entries = [_entry("google-bert/bert-base-uncased"), _entry("openai-community/gpt2")]
    assert find_entry(entries, "bert-base-uncased").id == "google-bert/bert-base-uncased"
    assert find_entry(entries, "GPT2").id == "openai-community/gpt2"
    assert find_entry(entries, "other-org/gpt2") is None  # a namespaced id matches exactly
    assert find_entry(entries, "base-uncased") is None  # the whole last component only


def test_a_bare_name_that_several_ids_end_in_is_refused_naming_them():
    entries = [_entry("org-a/tiny-model"), _entry("org-b/tiny-model")]
    with pytest.raises(ModelReferenceError, match="org-a/tiny-model, org-b/tiny-model"):
        find_entry(entries, "tiny-model")


@pytest.mark.parametrize(("legacy", "model_type"), [
    ("bert-base-uncased", "bert"), ("gpt2", "gpt2"), ("t5-small", "t5"),
    ("vit-base-patch16-224", "vit")])
def test_the_seeds_model_names_get_the_catalogues_config(plugins, tmp_path, legacy,
                                                         model_type):
    estimator = Estimator(plugins, detection_of(cpu_record()), db_path=tmp_path / "h.duckdb",
                          measure=False)
    ref = estimator.ref(legacy)
    assert ref.spec == legacy and ref.model_type == model_type
    assert "the hub's current id" in ref.evidence
    assert estimator.footprint(legacy).parameters > 1_000_000


@pytest.fixture
def pool_classifier(plugins, tmp_path):
    """A classifier on a CPU-only detection whose history measured tiny:gpt2 only."""
    cpu = cpu_record()
    db = tmp_path / "history.duckdb"
    record_result(db, plugins, "tiny:gpt2", cpu, peak_mb=300.0)
    estimator = Estimator(plugins, detection_of(cpu), db_path=db, measure=False)
    return HardwareAwareModelClassifier(estimator=estimator)


def test_a_model_whose_memory_is_unknown_is_reported_unknown_never_as_zero(pool_classifier):
    config = pool_classifier.get_optimal_resource_pool_config(
        ["tiny:gpt2", "no-such-org/no-such-model"])
    needs = config["resource_requirements"]
    assert needs["total_memory_mb"] is None and needs["max_memory_mb"] is None
    assert list(needs["unknown_models"]) == ["no-such-org/no-such-model"]
    assert needs["known_total_memory_mb"] >= 300.0  # tiny:gpt2's measured peak
    assert needs["known_max_memory_mb"] == 300.0
    assert config["models"]["no-such-org/no-such-model"]["requirements_known"] is False
    assert config["models"]["no-such-org/no-such-model"]["resident_mb"] is None
    assert config["resource_pool_config"]["low_memory_mode"] is None
    reason = config["resource_pool_config"]["reason"]
    assert "is unknown" in reason and "no-such-org/no-such-model" in reason
    assert " 0 MiB" not in reason


def test_only_unknown_models_give_no_total_at_all(pool_classifier):
    config = pool_classifier.get_optimal_resource_pool_config(["no-such-model-xyz"])
    needs = config["resource_requirements"]
    assert needs["total_memory_mb"] is None and needs["known_total_memory_mb"] is None
    assert "need 0" not in config["resource_pool_config"]["reason"]


def test_known_models_still_get_their_total(pool_classifier):
    config = pool_classifier.get_optimal_resource_pool_config(["tiny:gpt2"])
    needs = config["resource_requirements"]
    assert needs["total_memory_mb"] >= 300.0 and needs["unknown_models"] == {}
    assert config["resource_pool_config"]["low_memory_mode"] is False
