"""Pipelines declare the labels they take; the core hands each model to the pipeline whose
declaration matches it with the highest precedence.

The plugins here are the installed first-party pipelines (loaded from their entry points,
some left out per test) and, where a test needs one, a pipeline written here as a real
single-module distribution.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from conftest import make_plugin_dist
from hwaccel.kit.taxonomy import RULE_IDS, Label, rule_matches
from hwaccel.models.classify import classify, pipeline_infos
from hwaccel.plugins import Plugins, load_plugins, make_plugin_manager
from hwaccel.types import LabelRule

FIRST_PARTY = ("text", "vision", "vision-text", "audio", "multimodal", "diffusion", "moe",
               "state-space", "rag")
# TAXONOMY.md's recurrent-state model types (its "Then, for a model whose pipeline came out
# text" paragraph)
RECURRENT = ("mamba", "mamba2", "falcon_mamba", "bamba", "jamba", "zamba", "zamba2",
             "falcon_h1", "nemotron_h", "granitemoehybrid", "rwkv", "recurrent_gemma", "xlstm")

# An audio pipeline that declares no rule: it takes what TAXONOMY.md's rule gives to "audio".
DEFAULT_AUDIO = """
    from hwaccel import PipelineInfo, hookimpl

    @hookimpl
    def hwaccel_pipeline_info():
        return PipelineInfo(name="audio", example_models=("tiny:whisper",))

    @hookimpl
    def hwaccel_classify(model):
        from hwaccel.kit.claims import claim

        return claim(model, "audio", "nowhere.workload:Nothing")
"""


def _pipelines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, without: tuple[str, ...] = (),
               extra: dict[str, str] | None = None) -> Plugins:
    """The installed first-party pipelines less ``without``, plus ``extra`` (entry-point name
    -> module source) as single-module distributions."""
    eps = [ep for ep in importlib.metadata.entry_points(group="hwaccel")
           if ep.name in FIRST_PARTY and ep.name not in without]
    for name, source in (extra or {}).items():
        module = f"hwaccel_info_{name.replace('-', '_')}"
        root = make_plugin_dist(tmp_path / name, f"hwaccel-info-{name}", {name: module},
                                {f"{module}.py": source})
        monkeypatch.syspath_prepend(str(root))
        for dist in importlib.metadata.distributions(path=[str(root)]):
            eps.extend(ep for ep in dist.entry_points if ep.group == "hwaccel")
    pm = make_plugin_manager()
    return Plugins(pm, load_plugins(pm, strict=True, entry_points=eps))


def test_every_first_party_pipeline_declares_what_it_takes(tmp_path, monkeypatch):
    infos, errors = pipeline_infos(_pipelines(tmp_path, monkeypatch))
    assert errors == []
    by_name = {info.name: info for info in infos}
    assert sorted(by_name) == sorted(FIRST_PARTY)
    for name, info in by_name.items():
        assert info.plugin == name and info.distribution == f"hwaccel-pipeline-{name}"
        assert info.takes and info.example_models and info.description, name
        for rule in info.takes:
            assert rule.rules and set(rule.rules) <= set(RULE_IDS), name
    (state_space,) = by_name["state-space"].takes
    assert sorted(state_space.model_types) == sorted(RECURRENT)


def test_precedence_decides_a_recurrent_model_with_experts(tmp_path, monkeypatch):
    from transformers import AutoConfig

    assert AutoConfig.for_model("jamba").num_experts > 1  # text's, moe's and state-space's
    expected = [((), "state-space"), (("state-space",), "moe"),
                (("state-space", "moe"), "text")]
    for without, pipeline in expected:
        plugins = _pipelines(tmp_path, monkeypatch, without=without)
        result = classify("tiny:jamba", plugins).classification
        assert (result.pipeline, result.plugin) == (pipeline, pipeline), without
        assert result.workload and result.family == "text_generation"
    mamba = classify("tiny:mamba", _pipelines(tmp_path, monkeypatch, without=("state-space",)))
    assert mamba.classification.pipeline == "text"  # no experts: moe does not take it


def test_a_pipeline_that_declares_no_rule_takes_taxonomys_default(tmp_path, monkeypatch):
    plugins = _pipelines(tmp_path, monkeypatch, without=("audio",),
                         extra={"audio": DEFAULT_AUDIO})
    whisper = classify("tiny:whisper", plugins).classification
    assert (whisper.pipeline, whisper.distribution) == ("audio", "hwaccel-info-audio")
    assert whisper.workload == "nowhere.workload:Nothing"
    for model, pipeline in [("tiny:wav2vec2", "audio"), ("tiny:vit", "vision"),
                            ("tiny:gpt2", "text")]:
        assert classify(model, plugins).classification.pipeline == pipeline, model
    # a multimodal model with audio in it is still the multimodal pipeline's
    assert classify("tiny:qwen2_audio", plugins).classification.pipeline == "multimodal"


@pytest.mark.parametrize("model, without, default", [
    ("tiny:vit", ("vision",), "vision"),
    ("tiny:mamba", ("state-space", "text", "moe"), "state-space"),
    ("tiny:mixtral", ("moe", "text"), "moe"),
    ("rag:minilm+tiny:gpt2", ("rag",), "rag"),
])
def test_a_model_no_installed_pipeline_takes_names_the_default_to_install(
        tmp_path, monkeypatch, model, without, default):
    result = classify(model, _pipelines(tmp_path, monkeypatch, without=without)).classification
    assert result.pipeline == default and result.workload is None and result.plugin is None
    assert f"install hwaccel-pipeline-{default}" in result.reason


def test_a_label_rule_joins_its_fields_by_and_and_matches_nothing_when_empty():
    label = Label("text_generation", "causal_lm", None, "rule 6", "generative-lm", experts=8)
    tasks = frozenset({"CAUSAL_LM", "BASE"})
    assert not rule_matches(LabelRule(), label, "mixtral", tasks)
    assert rule_matches(LabelRule(rules=("encoder", "generative-lm")), label, "mixtral", tasks)
    assert rule_matches(LabelRule(rules=("generative-lm",), min_experts=8), label, "m", tasks)
    assert not rule_matches(LabelRule(rules=("generative-lm",), min_experts=9), label, "m", tasks)
    assert not rule_matches(LabelRule(rules=("generative-lm",), model_types=("mamba",)),
                            label, "mixtral", tasks)
    assert rule_matches(LabelRule(tasks=("CTC", "CAUSAL_LM")), label, "mixtral", tasks)
    assert not rule_matches(LabelRule(tasks=("CTC",)), label, "mixtral", tasks)
    assert rule_matches(LabelRule(families=("text_generation",)), label, None, frozenset())
    assert not rule_matches(LabelRule(families=("vision",)), label, None, frozenset())
