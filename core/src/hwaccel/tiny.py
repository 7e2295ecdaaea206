"""Tiny configs: the real architecture of a transformers model type, shrunk to a few KB.

The default config of the model type is taken from the installed transformers and every size
it declares (widths, depths, heads, vocabulary) is reduced, in nested sub-configs too; token
ids are kept inside the shrunk vocabulary. Weights are then random from :data:`TINY_SEED`, so
two builds of the same tiny model are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TINY_HIDDEN = 32
TINY_INTERMEDIATE = 64
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_KV_HEADS = 2
TINY_HEAD_DIM = TINY_HIDDEN // TINY_HEADS
TINY_VOCAB = 1024

_WIDTH = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim", "embedding_size",
          "word_embed_proj_dim", "projection_dim", "projection_size", "encoder_hidden_size")
_STAGE_WIDTHS = ("hidden_sizes",)  # per-stage widths of convolutional vision models
_CONV_WIDTHS = ("conv_dim", "tdnn_dim")  # per-layer channels of speech feature encoders
_STAGE_DEPTHS = ("depths",)
_INTERMEDIATE = ("intermediate_size", "ffn_dim", "d_ff", "n_inner", "hidden_dim",
                 "encoder_ffn_dim", "decoder_ffn_dim", "moe_intermediate_size",
                 "shared_expert_intermediate_size")
_LAYERS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_decoder_layers",
           "encoder_layers", "decoder_layers")
_HEADS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
          "decoder_attention_heads")
_KV_HEADS = ("num_key_value_heads", "num_kv_heads", "multi_query_group_num")
_HEAD_DIM = ("head_dim", "d_kv", "attention_head_size", "rotary_dim", "v_head_dim",
             "kv_lora_rank", "q_lora_rank")
_MLA_HEAD_DIM = ("qk_rope_head_dim", "qk_nope_head_dim")  # latent-attention query split
_FILL_WHEN_NONE = {"head_dim": TINY_HEAD_DIM, "num_key_value_heads": TINY_KV_HEADS}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)


def _token_ids(values: dict[str, Any]) -> set[int]:
    """The integer token ids a config dict declares."""
    keys = [k for k in values if k.endswith(("token_id", "token_index"))]
    return {values[k] for k in keys if _is_int(values[k])}


def _token_ids_within(values: dict[str, Any], vocab: int,
                      reserved: set[int] = frozenset()) -> dict[str, Any]:
    """Move token ids outside ``vocab`` to distinct free ids from the top of the vocabulary.

    Equal ids stay equal (gpt2's bos and eos), different ones stay different, and none takes
    a ``reserved`` id (an image token must not become the text model's end-of-sequence).
    """
    keys = [k for k in values if k.endswith(("token_id", "token_index"))]
    taken = {t for t in _token_ids(values) | set(reserved) if 0 <= t < vocab}
    free = (i for i in range(vocab - 1, -1, -1) if i not in taken)
    moved: dict[int, int] = {}

    def within(token: int) -> int:
        return token if token < vocab else moved.setdefault(token, next(free))

    out: dict[str, Any] = {}
    for key in keys:
        token = values[key]
        if _is_int(token) and token >= vocab:
            out[key] = within(token)
        elif isinstance(token, list) and any(_is_int(t) and t >= vocab for t in token):
            out[key] = [within(t) for t in token if _is_int(t)]
    return out


def _shrink(values: dict[str, Any]) -> dict[str, Any]:
    """Return the overrides that make one (sub-)config dict tiny.

    A composite config (no ``vocab_size`` of its own) has token ids that index its
    ``text_config``'s vocabulary, shrunk before it (sub-configs are shrunk first).
    """
    out: dict[str, Any] = {}

    def cap(keys: tuple[str, ...], value: int) -> None:
        for key in keys:
            if _is_int(values.get(key)):
                out[key] = min(values[key], value)

    cap(_WIDTH, TINY_HIDDEN)
    cap(_INTERMEDIATE, TINY_INTERMEDIATE)
    cap(_LAYERS, TINY_LAYERS)
    cap(_HEADS, TINY_HEADS)
    cap(_KV_HEADS, TINY_KV_HEADS)
    cap(_HEAD_DIM, TINY_HEAD_DIM)
    cap(_MLA_HEAD_DIM, TINY_HEAD_DIM)
    for key, value in _FILL_WHEN_NONE.items():
        if key in values and values[key] is None:
            out[key] = value
    # per-stage lists of convolutional models: narrow and one block deep, unless group norms
    # fix the number of channels groups must divide (BiT)
    if not _is_int(values.get("num_groups")):
        for key in _STAGE_WIDTHS:
            if _int_list(values.get(key)):
                out[key] = [min(v, TINY_INTERMEDIATE) for v in values[key]]
        for key in _STAGE_DEPTHS:
            if _int_list(values.get(key)):
                out[key] = [min(v, 1) for v in values[key]]
    for key in _CONV_WIDTHS:
        if _int_list(values.get(key)):
            out[key] = [min(v, TINY_HIDDEN) for v in values[key]]
    # per-layer lists (layer_types, sliding-window patterns) follow the new depth
    depth = next((values[k] for k in _LAYERS if _is_int(values.get(k))), None)
    if depth is not None and depth > TINY_LAYERS:
        for key, value in values.items():
            if isinstance(value, list) and len(value) == depth:
                out[key] = value[:TINY_LAYERS]
    for key in ("src_vocab_size", "tgt_vocab_size"):
        cap((key,), TINY_VOCAB)
    vocab = values.get("vocab_size")
    if "vocab_size" in values and (vocab is None or (_is_int(vocab) and vocab > TINY_VOCAB)):
        out["vocab_size"] = vocab = TINY_VOCAB
    text = values.get("text_config") if isinstance(values.get("text_config"), dict) else {}
    reserved: set[int] = set()
    if not _is_int(vocab):  # a composite config: its token ids index the text model's vocab
        vocab, reserved = text.get("vocab_size"), _token_ids(text)
    if _is_int(vocab) and vocab > 0:
        out.update(_token_ids_within(values, vocab, reserved))
    return out


def tiny_config(model_type: str) -> Any:
    """Return the tiny config object of a transformers model type (fixed, deterministic)."""
    from transformers import AutoConfig, PretrainedConfig

    config = AutoConfig.for_model(model_type)

    def apply(cfg: Any) -> None:
        for value in vars(cfg).values():  # sub-configs first: their vocabularies count above
            if isinstance(value, PretrainedConfig):
                apply(value)
        for key, value in _shrink(cfg.to_dict()).items():
            setattr(cfg, key, value)

    apply(config)
    return config


def rebuilt_tiny_config(model_type: str,
                        adjust: Callable[[dict, dict, dict], None] | None = None) -> Any:
    """The tiny config rebuilt through its config class, after ``adjust`` adds overrides.

    Rebuilding derives again, from the shrunk values, the sizes a config class computes from
    others when it is built (RWKV's ``attention_hidden_size``, DeepSeek's ``qk_head_dim``,
    Mamba's ``time_step_rank``). ``adjust(values, default, overrides)`` gets the tiny values,
    the default config's values and the overrides so far, and may add more (a pipeline's
    fixes for its own architectures). A class that refuses the rebuild keeps the tiny config
    with the overrides set on it.
    """
    from transformers import AutoConfig

    tiny = tiny_config(model_type)
    default = AutoConfig.for_model(model_type).to_dict()
    values = tiny.to_dict()
    overrides = {k: v for k, v in values.items() if default.get(k) != v}
    if adjust is not None:
        adjust(values, default, overrides)
    try:
        return AutoConfig.for_model(model_type, **overrides)
    except Exception:  # noqa: BLE001 - a class that refuses the rebuild keeps the tiny config
        for key, value in overrides.items():
            if not isinstance(value, dict):
                setattr(tiny, key, value)
        return tiny
