"""Tiny configs: the real architecture of a transformers model type, shrunk to a few KB.

The default config of the model type is taken from the installed transformers and every size
it declares (widths, depths, heads, vocabulary) is reduced, in nested sub-configs too; token
ids are kept inside the shrunk vocabulary. Weights are then random from :data:`TINY_SEED`, so
two builds of the same tiny model are identical.
"""

from __future__ import annotations

from typing import Any

TINY_HIDDEN = 32
TINY_INTERMEDIATE = 64
TINY_LAYERS = 2
TINY_HEADS = 2
TINY_HEAD_DIM = TINY_HIDDEN // TINY_HEADS
TINY_VOCAB = 1024

_WIDTH = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim", "embedding_size",
          "word_embed_proj_dim")
_INTERMEDIATE = ("intermediate_size", "ffn_dim", "d_ff", "n_inner", "hidden_dim",
                 "encoder_ffn_dim", "decoder_ffn_dim", "moe_intermediate_size",
                 "shared_expert_intermediate_size")
_LAYERS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_decoder_layers",
           "encoder_layers", "decoder_layers")
_HEADS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
          "decoder_attention_heads", "num_key_value_heads")
_HEAD_DIM = ("head_dim", "d_kv", "attention_head_size")


def _shrink(values: dict[str, Any]) -> dict[str, Any]:
    """Return the overrides that make one (sub-)config dict tiny."""
    out: dict[str, Any] = {}

    def set_int(keys: tuple[str, ...], value: int, only_if_larger: bool = True) -> None:
        for key in keys:
            current = values.get(key)
            if isinstance(current, int) and not isinstance(current, bool):
                out[key] = min(current, value) if only_if_larger else value

    set_int(_WIDTH, TINY_HIDDEN)
    set_int(_INTERMEDIATE, TINY_INTERMEDIATE)
    set_int(_LAYERS, TINY_LAYERS)
    set_int(_HEADS, TINY_HEADS)
    set_int(_HEAD_DIM, TINY_HEAD_DIM)
    vocab = values.get("vocab_size")
    if isinstance(vocab, int) and vocab > TINY_VOCAB:
        out["vocab_size"] = vocab = TINY_VOCAB
    if isinstance(vocab, int):
        for key in [k for k in values if k.endswith(("token_id", "token_index"))]:
            token = values.get(key)
            if isinstance(token, int) and token >= vocab:
                out[key] = vocab - 1
            elif isinstance(token, list):
                out[key] = [t if t < vocab else vocab - 1 for t in token if isinstance(t, int)]
    return out


def tiny_config(model_type: str) -> Any:
    """Return the tiny config object of a transformers model type (fixed, deterministic)."""
    from transformers import AutoConfig, PretrainedConfig

    config = AutoConfig.for_model(model_type)

    def apply(cfg: Any) -> None:
        for key, value in _shrink(cfg.to_dict()).items():
            setattr(cfg, key, value)
        for value in vars(cfg).values():
            if isinstance(value, PretrainedConfig):
                apply(value)

    apply(config)
    return config
