"""The tiny-config search: shrink, check by building and running, relax, remember, attribute.

The workloads here are small subclasses of the core's ``TransformersWorkload`` around a real
BERT whose forward call refuses what a fussy model would; their refusals are raised from
this test module, which stands for a model's own code (not hwaccel's).
"""

from __future__ import annotations

from typing import Any

import pytest

from hwaccel.kit import tiny_search
from hwaccel.kit.failures import AttributedError
from hwaccel.kit.tiny import default_values
from hwaccel.kit.workloads import TransformersWorkload
from hwaccel.models.resolve import resolve_model
from hwaccel.types import Classification


class BertWorkload(TransformersWorkload):
    """A bare BERT encoder on seeded token ids."""

    @property
    def model_class(self) -> Any:
        import transformers

        return transformers.BertModel

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        import torch

        ids = torch.randint(4, int(self.config.vocab_size), (batch_size, seq_len),
                            generator=torch.Generator().manual_seed(0))
        return {"input_ids": ids}

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"last_hidden_state": model(**inputs).last_hidden_state}


class NarrowRefusing(BertWorkload):
    """Refuses any width below the type's default, naming the key it needs."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        if model.config.hidden_size < default_values("bert")["hidden_size"]:
            raise ValueError(f"hidden_size {model.config.hidden_size} is too narrow")
        return super().forward(model, inputs)


class NeverBuilds(BertWorkload):
    """A model class that cannot be built from any config, its default one included."""

    @property
    def model_class(self) -> Any:
        def broken(config: Any) -> Any:
            raise TypeError("empty() takes 1 positional argument but 3 were given")
        return broken


class AsksForAnInput(BertWorkload):
    """A model whose forward demands an argument the inputs lack."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("You have to specify token_type_ids")


class NeedsALibrary(BertWorkload):
    """A model that imports an optional library when it runs."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        raise ModuleNotFoundError("No module named 'fancylib'", name="fancylib")


def workload(cls: type) -> TransformersWorkload:
    ref = resolve_model("tiny:bert")
    return cls(ref, Classification(model="tiny:bert", family="embedding", pipeline="text"))


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))


def count_probes(monkeypatch) -> list[frozenset[str]]:
    """Record the candidates the search builds."""
    probed: list[frozenset[str]] = []
    original = tiny_search._Search.probe

    def probe(self, keep, limit=tiny_search.MAX_PARAMETERS):
        probed.append(keep)
        return original(self, keep, limit)

    monkeypatch.setattr(tiny_search._Search, "probe", probe)
    return probed


def test_a_key_the_error_names_keeps_its_default_and_the_rest_stays_tiny(monkeypatch):
    probed = count_probes(monkeypatch)
    default = default_values("bert")
    config = workload(NarrowRefusing).config
    assert config.hidden_size == default["hidden_size"]
    assert config.num_hidden_layers < default["num_hidden_layers"]
    assert config.vocab_size < default["vocab_size"]
    assert probed[:2] == [frozenset(), frozenset({"hidden_size"})]  # the named key first


def test_what_worked_is_remembered(monkeypatch):
    first = workload(NarrowRefusing).config
    probed = count_probes(monkeypatch)
    again = workload(NarrowRefusing).config
    assert probed == [] and again.to_dict() == first.to_dict()


def test_a_type_whose_default_config_cannot_build_is_the_models_failure():
    with pytest.raises(AttributedError) as caught:
        _ = workload(NeverBuilds).config
    assert caught.value.category == "model"
    assert "default config too" in caught.value.message
    assert "empty() takes 1 positional argument" in caught.value.message


def test_an_input_the_model_asks_for_stops_the_search_at_once(monkeypatch):
    probed = count_probes(monkeypatch)
    with pytest.raises(AttributedError) as caught:
        _ = workload(AsksForAnInput).config
    assert caught.value.category == "harness"  # hwaccel did not give the input
    assert "token_type_ids" in caught.value.message
    assert len(probed) == 1


def test_a_missing_library_is_named_not_relaxed_around(monkeypatch):
    probed = count_probes(monkeypatch)
    with pytest.raises(AttributedError) as caught:
        _ = workload(NeedsALibrary).config
    assert caught.value.category == "missing-dependency"
    assert caught.value.message.endswith("pip install fancylib")
    assert len(probed) == 1


class ReadsAnUndeclaredValue(BertWorkload):
    """A model that reads a value its config class does not declare (as some default configs
    of transformers leave out what real checkpoints set)."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        heads = model.config.num_key_value_attention_heads  # raises until it is completed
        assert heads == model.config.num_attention_heads
        return super().forward(model, inputs)


def test_a_value_the_default_config_lacks_is_taken_from_the_config():
    config = workload(ReadsAnUndeclaredValue).config
    # the key that ends with most of its words holds the same quantity
    assert config.num_key_value_attention_heads == config.num_attention_heads


class ScalesByANoneValue(BertWorkload):
    """A model that multiplies by a value its config class declares but leaves ``None`` by
    default (as real checkpoints set it)."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        hidden = super().forward(model, inputs)["last_hidden_state"]
        return {"last_hidden_state": hidden * model.config.classifier_dropout}


def test_a_value_the_default_config_leaves_none_is_filled_by_its_declared_type(monkeypatch):
    from transformers import BertConfig

    assert BertConfig().classifier_dropout is None
    probed = count_probes(monkeypatch)
    config = workload(ScalesByANoneValue).config
    assert isinstance(config.classifier_dropout, float)
    assert probed[1] == frozenset({"<fill classifier_dropout>"})  # before any size
    assert config.hidden_size < default_values("bert")["hidden_size"]


def real(model_type: str) -> TransformersWorkload:
    from hwaccel.kit.workloads import load_workload
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load

    spec = f"tiny:{model_type}"
    return load_workload(spec, classify(spec, load()).classification)


def test_a_per_layer_list_left_none_gets_the_kinds_the_modeling_code_names():
    # LFM2-MoE's default config leaves layer_types None; its layers test `!= "conv"`
    work = real("lfm2_moe")
    config = work.config
    assert config.layer_types == ["conv"] * config.num_hidden_layers
    inputs = work.make_inputs(1, 8)
    assert work.forward(work.load_model(), inputs)


def test_a_token_id_the_config_lacks_is_a_free_id_the_prompt_uses():
    # the Qwen2.5-Omni thinker's rope index reads vision_start_token_id, which its config
    # class does not declare
    work = real("qwen2_5_omni_thinker")
    config = work.config
    start = config.vision_start_token_id
    others = {value for key, value in config.to_dict().items()
              if key.endswith("_token_id") and key != "vision_start_token_id"}
    assert start not in others and 0 <= start < config.text_config.vocab_size
    inputs = work.make_inputs(2, 8)
    assert (inputs["input_ids"] == start).sum(dim=1).tolist() == [1, 1]
    assert work.forward(work.load_model(), inputs)


def test_a_none_nothing_can_fill_stays_the_models_failure():
    # Chameleon's default config leaves the image vocabulary map (a checkpoint's token
    # table) None: not a number or a list of layer kinds
    with pytest.raises(AttributedError) as caught:
        _ = real("chameleon").config
    assert caught.value.category == "model"
    assert "default config too" in caught.value.message


def test_per_class_lists_left_none_get_one_entry_per_label():
    # PP-DocLayoutV2's default config leaves class_thresholds and class_order None; its
    # forward makes a tensor of each
    work = real("pp_doclayout_v2")
    config = work.config
    labels = len(config.id2label)
    assert config.class_order == list(range(labels))
    assert len(config.class_thresholds) == labels
    assert work.forward(work.load_model(), work.make_inputs(1, 8))


class ClampsByANoneValueOnTheNextLine(BertWorkload):
    """A call whose arguments span lines reads a value the default leaves ``None``."""

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        import torch

        hidden = super().forward(model, inputs)["last_hidden_state"]
        return {"last_hidden_state": torch.clamp(
            hidden,
            max=model.config.classifier_dropout)}


def test_a_none_value_read_further_down_the_failing_statement_is_filled():
    config = workload(ClampsByANoneValueOnTheNextLine).config
    assert isinstance(config.classifier_dropout, float)


class FilledThenNeedsALibrary(BertWorkload):
    """Once a value is filled, the model needs a library that is missing: no size can
    help."""

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        if self.config.classifier_dropout is not None:
            raise ModuleNotFoundError("No module named 'fancylib'", name="fancylib")
        return super().make_inputs(batch_size, seq_len)

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"scaled": super().forward(model, inputs)["last_hidden_state"]
                * model.config.classifier_dropout}


def test_a_hopeless_failure_met_while_relaxing_stops_the_search(monkeypatch):
    probed = count_probes(monkeypatch)
    with pytest.raises(AttributedError) as caught:
        _ = workload(FilledThenNeedsALibrary).config
    assert caught.value.category == "missing-dependency"
    assert len(probed) == 2


def test_only_the_declared_kinds_of_values_are_filled():
    from transformers import CONFIG_MAPPING

    from hwaccel.kit.tiny_completion import filled_value

    emu3 = CONFIG_MAPPING["emu3"]()  # vocabulary_map: dict[str, int] | None
    assert emu3.vocabulary_map is None and filled_value(emu3, "vocabulary_map") is None
