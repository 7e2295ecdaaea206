"""Tiny configs that hold together: coupled sizes stay consistent after shrinking.

Every expectation is derived from the installed transformers' default config of the type or
from the tiny config's own other values, never copied from the shrinker.
"""

from __future__ import annotations

from hwaccel.kit.tiny import (
    FIRST_LAYERS,
    TINY_HEADS,
    TINY_LAYERS,
    default_values,
    shrunk_values,
    tiny_config,
    without_kind,
)


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def test_stage_heads_divide_stage_widths():
    config = tiny_config("swin")  # per-stage heads 3, 6, 12, 24 in the default
    for stage, heads in enumerate(config.num_heads):
        assert _is_pow2(heads) and heads <= TINY_HEADS
        assert (config.embed_dim * 2 ** stage) % heads == 0
    # a size the class derives from others is derived again, not copied
    assert config.hidden_size == config.embed_dim * 2 ** (len(config.depths) - 1)


def test_a_neck_keeps_reading_the_channels_its_backbone_gives():
    default = default_values("d_fine")
    config = tiny_config("d_fine")
    backbone = dict(zip(default["backbone_config"]["hidden_sizes"],
                        config.backbone_config.hidden_sizes, strict=True))
    # the encoder's input channels were copies of backbone stage widths: still the same ones
    assert config.encoder_in_channels == [backbone[c] for c in default["encoder_in_channels"]]


def test_one_layer_of_every_kind_a_pattern_names():
    default = default_values("qwen3_next")  # linear-attention layers, then a full one
    config = tiny_config("qwen3_next")
    kinds = set(default["layer_types"])
    assert set(config.layer_types) == kinds and len(config.layer_types) == len(kinds)
    assert config.num_hidden_layers == len(config.layer_types) < default["num_hidden_layers"]


def test_a_kind_of_layer_can_be_left_out():
    default = default_values("qwen3_next")
    left_out = default["layer_types"][0]
    config = tiny_config("qwen3_next", frozenset({without_kind(left_out)}))
    assert left_out not in config.layer_types
    assert set(config.layer_types) == set(default["layer_types"]) - {left_out}


def test_first_layers_only_when_asked():
    default = default_values("gemma3_text")  # five sliding-window layers, then a full one
    assert set(tiny_config("gemma3_text").layer_types) == set(default["layer_types"])
    config = tiny_config("gemma3_text", frozenset({FIRST_LAYERS}))
    assert config.layer_types == default["layer_types"][:TINY_LAYERS]


def test_layer_indices_are_renumbered_with_the_layers_kept():
    default = default_values("kolibri1_1")  # some layers read keys and values of others
    values = shrunk_values(default)
    sources = values["kv_source_layers"]
    assert len(sources) == values["num_hidden_layers"] < default["num_hidden_layers"]
    assert all(0 <= source <= layer for layer, source in enumerate(sources))
    # a layer whose source was kept still reads it; the others compute their own
    kept = [default["layer_types"].index(kind) for kind in values["layer_types"]]
    for layer, source in enumerate(sources):
        original = default["kv_source_layers"][kept[layer]]
        assert kept[source] == (original if original in kept else kept[layer])


def test_kept_keys_stay_at_their_defaults():
    default = default_values("bert")
    config = tiny_config("bert", frozenset({"hidden_size"}))
    assert config.hidden_size == default["hidden_size"]
    assert config.num_hidden_layers < default["num_hidden_layers"]
    assert config.vocab_size < default["vocab_size"]


def test_token_ids_stay_inside_the_vocabulary_and_apart():
    config = tiny_config("gpt2")
    assert config.bos_token_id == config.eos_token_id < config.vocab_size
    llava = tiny_config("llava")
    vocab = llava.text_config.vocab_size
    assert llava.image_token_index < vocab
    assert llava.image_token_index not in {llava.text_config.bos_token_id,
                                           llava.text_config.eos_token_id}


def test_key_value_heads_that_equalled_the_query_heads_still_do():
    for model_type in ("deepseek_v3", "qwen2_vl", "olmo"):
        default = default_values(model_type)
        text = default.get("text_config") or default
        if text.get("num_key_value_heads") != text["num_attention_heads"]:
            continue  # the installed default no longer has plain multi-head attention
        config = tiny_config(model_type)
        config = getattr(config, "text_config", config)
        assert config.num_key_value_heads == config.num_attention_heads <= TINY_HEADS


def test_equal_rotary_sections_stay_equal_and_partial_rotation_is_counted():
    # paddleocr_vl: only its modeling code names the sections, with a default of its own
    for model_type in ("qwen2_vl", "glm4v", "cosmos3_edge", "hy_v4_vl", "paddleocr_vl"):
        default = default_values(model_type)["text_config"]["rope_parameters"] or {}
        text = tiny_config(model_type).text_config
        head_dim = getattr(text, "head_dim", None) or \
            text.hidden_size // text.num_attention_heads
        factor = text.rope_parameters.get("partial_rotary_factor") or \
            getattr(text, "partial_rotary_factor", None) or 1.0
        sections = text.rope_parameters["mrope_section"]
        assert sum(sections) == int(head_dim * factor) // 2, model_type
        named = default.get("mrope_section") or []  # absent: the class declares the key
        for i, j in [(i, j) for i in range(len(named)) for j in range(len(named)) if i < j]:
            if named[i] == named[j]:
                assert sections[i] == sections[j], (model_type, sections)


def test_mamba2_heads_times_head_size_is_the_inner_width():
    config = tiny_config("nemotron_h")  # heads, head size and groups under mamba_* names
    assert config.mamba_num_heads * config.mamba_head_dim == \
        config.expand * config.hidden_size
    assert config.mamba_num_heads % config.n_groups == 0


def test_a_field_its_class_serialises_under_another_name_is_shrunk():
    # Inkling's vision config writes num_hidden_layers as n_layers (its attribute_map)
    from hwaccel.kit.tiny import default_values, tiny_config

    assert default_values("inkling_mm_model")["vision_config"]["n_layers"] > 2
    assert tiny_config("inkling_mm_model").vision_config.num_hidden_layers == 2
