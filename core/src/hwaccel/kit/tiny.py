"""Tiny configs: the real architecture of a transformers model type, shrunk to a few KB.

The default config of the model type is taken from the installed transformers and every size
it declares (widths, depths, heads, vocabulary) is reduced, in nested sub-configs too, so that
the sizes stay consistent with one another:

* head counts become powers of two no larger than :data:`TINY_HEADS`, and widths powers of
  two, so heads divide widths in every stage of a per-stage list as well;
* a size that other keys copy (a backbone's stage widths that the neck lists as its input
  channels, a tower's width that the projector names) is mapped to the same shrunk value
  wherever the same default value appears under a size-like key, across sub-configs;
* depth becomes two layers, or one layer of every kind a per-layer pattern names
  (``layer_types``: full, sliding, linear attention, mlp ...; at most four); per-layer lists
  follow the layers kept; token ids stay inside the shrunk vocabulary;
* the config is then rebuilt through its config class from the shrunk values, so the sizes
  a class derives from others (Swin's ``hidden_size`` from ``embed_dim``, RWKV's
  ``attention_hidden_size``) follow them.

``keep`` names dotted key paths (``hidden_size``, ``vision_config.patch_size``, or a whole
sub-config ``backbone_config``) that keep the type's defaults: the relaxation steps of
:mod:`hwaccel.kit.tiny_search`, which checks each candidate by building it and running it.
Weights are then random from :data:`~hwaccel.kit.tiny.TINY_SEED`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwaccel.kit import tiny_couplings as couplings

TINY_SEED = 0
"""The seed of every random weight and input of a ``tiny:`` model (two builds are equal)."""
TINY_HIDDEN = 32
TINY_INTERMEDIATE = 64
TINY_LAYERS = 2
TINY_MAX_KINDS = 4  # layers kept, at most, so that every kind of layer a pattern has runs
FIRST_LAYERS = "<first layers>"
"""In ``keep``: take the first layers only, not one of every kind."""
_WITHOUT = "<no layers of kind "


def without_kind(kind: str) -> str:
    """In ``keep``: leave the layers of this kind out (a kind whose default config cannot be
    built), keeping one of every other kind."""
    return f"{_WITHOUT}{kind}>"


def layer_kinds(tree: dict[str, Any]) -> list[str]:
    """Every kind of layer the per-layer patterns of a default values tree name."""
    kinds: list[str] = []
    depth = next((tree[k] for k in _LAYERS if _is_int(tree.get(k))), None)
    for value in tree.values():
        if _is_subconfig(value):
            kinds.extend(layer_kinds(value))
        elif (isinstance(value, list) and depth and len(value) == depth
              and all(isinstance(v, str) for v in value)):
            kinds.extend(value)
    return list(dict.fromkeys(kinds))


def _left_out(keep: frozenset[str]) -> frozenset[str] | None:
    """The layer kinds ``keep`` leaves out; ``None`` for the first layers only."""
    if FIRST_LAYERS in keep:
        return None
    return frozenset(k[len(_WITHOUT):-1] for k in keep if k.startswith(_WITHOUT))
TINY_HEADS = 4
TINY_KV_HEADS = 2
TINY_HEAD_DIM = TINY_HIDDEN // TINY_HEADS
TINY_VOCAB = 1024

_WIDTH = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim", "embedding_size",
          "word_embed_proj_dim", "projection_dim", "projection_size", "encoder_hidden_size",
          "emb_dim", "d_embed", "embedding_dim", "n_embed", "d_latents")
_STAGE_WIDTHS = ("hidden_sizes",)  # per-stage widths of convolutional vision models
_CONV_WIDTHS = ("conv_dim", "tdnn_dim")  # per-layer channels of speech feature encoders
_STAGE_DEPTHS = ("depths", "num_block_repeats", "stage_num_blocks")
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
# Keys whose names say they hold a size another key may copy (channels, widths, dims)...
_SIZE_LIKE = re.compile(r"(hidden|channel|dim|width|size|feature|embed|filters)", re.I)
# ...except sizes of the input or of positions, which no width shrink may touch.
_NOT_A_WIDTH = re.compile(r"(head|image|img|patch|vocab|position|window|kernel|stride|sampl|"
                          r"pool|num_(labels|classes|queries|frames)|token|max_|length|"
                          r"bins|ratio|scale|rate|grid)", re.I)
_HEAD_COUNT = re.compile(r"(^|_)num_(\w+_)?heads($|_)|_heads_per_")
_KV_LIKE = re.compile(r"key_value|kv")
_INNER_LIKE = re.compile(r"(intermediate|ffn|mlp|inner|expert)", re.I)
_LAYER_COUNT = re.compile(r"^num_\w+_layers$")
_ROPE_DEFAULT_READ = re.compile(r"rope_parameters\.get\(\s*[\"'](\w+)[\"']\s*,")
_LINKED_MIN = 64  # values below this are too common to link by value (2, 8, 32 ...)
_GENERIC_MIN = 128  # a size-like key no rule shrank is capped when its default is this large


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)


def _pow2_floor(value: int) -> int:
    """The largest power of two not above ``value`` (1 for values below 2)."""
    return 1 << (max(value, 1).bit_length() - 1)


def token_ids(values: dict[str, Any]) -> set[int]:
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
    taken = {t for t in token_ids(values) | set(reserved) if 0 <= t < vocab}
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


def _shrink(values: dict[str, Any], left_out: frozenset[str] | None = frozenset()
            ) -> dict[str, Any]:
    """Return the overrides that make one (sub-)config dict tiny, by key name.

    A composite config (no ``vocab_size`` of its own) has token ids that index its
    ``text_config``'s vocabulary, shrunk before it (sub-configs are shrunk first).
    """
    out: dict[str, Any] = {}

    def cap(keys: tuple[str, ...], value: int, pow2: bool = False) -> None:
        for key in keys:
            current = values.get(key)
            if _is_int(current):
                out[key] = _pow2_floor(min(current, value)) if pow2 else min(current, value)
            elif pow2 and _int_list(current):  # per-stage head counts
                out[key] = [_pow2_floor(min(v, value)) for v in current]

    cap(_WIDTH, TINY_HIDDEN)
    cap(_INTERMEDIATE, TINY_INTERMEDIATE)
    cap(_LAYERS, TINY_LAYERS)
    cap(_HEADS, TINY_HEADS, pow2=True)
    cap(_KV_HEADS, TINY_KV_HEADS, pow2=True)
    for key in values:  # other head counts (a predictor's heads, heads per layer)
        if key not in (*_HEADS, *_KV_HEADS) and _HEAD_COUNT.search(key):
            cap((key,), TINY_KV_HEADS if _KV_LIKE.search(key) else TINY_HEADS, pow2=True)
    cap(_HEAD_DIM, TINY_HEAD_DIM)
    cap(_MLA_HEAD_DIM, TINY_HEAD_DIM)
    couplings.width_named_hidden_dim(values, out, TINY_HIDDEN)
    couplings.attention_heads(values, out)
    couplings.mamba2_heads(values, out, TINY_HEADS)
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
        couplings.chained_block_channels(values, out, TINY_INTERMEDIATE)
    for key in _CONV_WIDTHS:
        if _int_list(values.get(key)):
            out[key] = [min(v, TINY_HIDDEN) for v in values[key]]
    # per-layer lists (layer_types, sliding-window patterns) follow the new depth, keeping
    # one layer of every kind the pattern names
    depth = next((values[k] for k in _LAYERS if _is_int(values.get(k))), None)
    if depth is not None and depth > TINY_LAYERS:
        per_layer = {k: v for k, v in values.items() if isinstance(v, list) and len(v) == depth}
        chosen = _layers_kept(depth, per_layer, left_out)
        for key in _LAYERS:
            if values.get(key) == depth:
                out[key] = len(chosen)
        for key, value in per_layer.items():
            kept = [out.get(key, value)[i] for i in chosen]
            if _names_layers(key) and all(_is_int(v) and 0 <= v < depth for v in value):
                # indices of other layers (a layer reading another's keys and values):
                # renumbered, or the layer itself when its source is not kept
                kept = [chosen.index(v) if v in chosen else new for new, v in enumerate(kept)]
            out[key] = kept
        for key, value in values.items():
            if (_names_layers(key) and key not in per_layer and _int_sequence(value)
                    and all(0 <= v < depth for v in value)):
                # some layers' indices (dense, cross-attention, global-attention layers):
                # those kept, renumbered; at least one, the last, when none of them is
                kept = [chosen.index(v) for v in value if v in chosen]
                out[key] = kept or [len(chosen) - 1]
            elif (_LAYER_COUNT.match(key) and key not in _LAYERS and _is_int(value)
                  and value > len(chosen) and not key.endswith("shared_layers")):
                out[key] = len(chosen)  # layers of a kind (global ones) within the depth
    for key in values:  # every other vocabulary (source, target, entities, hash tables)
        if "vocab" in key and key != "vocab_size":
            cap((key,), TINY_VOCAB)
    for key in values:  # layers reusing other layers' caches: none in a tiny model
        if key.endswith("shared_layers") and _is_int(values[key]):
            out[key] = 0
    vocab = values.get("vocab_size")
    if "vocab_size" in values and (vocab is None or (_is_int(vocab) and vocab > TINY_VOCAB)):
        out["vocab_size"] = vocab = TINY_VOCAB
    couplings.rope_sections(values, out, _declared_rope_keys(values.get("model_type")))
    text = values.get("text_config") if isinstance(values.get("text_config"), dict) else {}
    reserved: set[int] = set()
    if not _is_int(vocab):  # a composite config: its token ids index the text model's vocab
        vocab, reserved = text.get("vocab_size"), token_ids(text)
    if _is_int(vocab) and vocab > 0:
        out.update(_token_ids_within(values, vocab, reserved))
        if "pad_token_id" in values and values["pad_token_id"] is None:
            # a padding index the model's embeddings may need (ESM's position ids count
            # from it, so the lowest free id)
            taken = token_ids({**values, **out}) | reserved
            out["pad_token_id"] = next(i for i in range(vocab) if i not in taken)
    return out


@functools.cache
def _declared_rope_keys(model_type: Any) -> tuple[str, ...]:
    """The rope keys whose defaults live in the model's code rather than its config: those the
    config class says its validation ignores (``ignore_keys_at_rope_validation``) and those
    its modeling module reads from the rope parameters with a default of its own
    (``rope_parameters.get("mrope_section", [16, 24, 24])``)."""
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type] if isinstance(model_type, str) and \
        model_type in CONFIG_MAPPING else None
    declared = tuple(getattr(cls, "ignore_keys_at_rope_validation", None) or ())
    if cls is None:
        return declared
    return declared + tuple(_ROPE_DEFAULT_READ.findall(modeling_source(cls)))


@functools.cache
def modeling_source(config_class: type) -> str:
    """The source of the modeling module beside a config class's configuration module
    (read, not imported), ``""`` when there is none."""
    import importlib.util

    if ".configuration_" not in config_class.__module__:
        return ""
    try:
        spec = importlib.util.find_spec(
            config_class.__module__.replace(".configuration_", ".modeling_"))
        return Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
    except (ImportError, OSError, ValueError):
        return ""


def _names_layers(key: str) -> bool:
    """True for a key whose integers are layer indices (``kv_source_layers``,
    ``mlp_only_layers``, ``global_attn_indexes``), not counts per layer
    (``num_key_value_heads_per_layer``)."""
    return key.endswith(("layers", "layer_ids", "layer_indices", "indexes")) and \
        not key.startswith("num_")


def _int_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(_is_int(v) for v in value)


def _layers_kept(depth: int, per_layer: dict[str, list[Any]],
                 left_out: frozenset[str] | None) -> list[int]:
    """The indices of the layers a tiny config keeps: the first layer of every kind the
    per-layer string lists name (``layer_types``: attention, sliding, linear, mlp ...) but the
    kinds ``left_out``, at most :data:`TINY_MAX_KINDS` of them, then more layers (not of a
    kind left out) up to :data:`TINY_LAYERS`; with ``left_out`` ``None``, the first layers."""
    patterns = [v for v in per_layer.values() if all(isinstance(k, str) for k in v)]
    excluded = {i for value in patterns for i, kind in enumerate(value)
                if left_out and kind in left_out}
    chosen: list[int] = []
    for value in patterns if left_out is not None else ():
        for kind in dict.fromkeys(value):
            index = value.index(kind)
            if kind not in left_out and index not in chosen and len(chosen) < TINY_MAX_KINDS:
                chosen.append(index)
    for index in range(depth):
        if len(chosen) >= TINY_LAYERS:
            break
        if index not in chosen and index not in excluded:
            chosen.append(index)
    return sorted(chosen)


def _is_subconfig(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("model_type"), str)


def _width_map(tree: dict[str, Any], shrunk: dict[str, Any],
               links: dict[str, dict[int, set[int]]], recurse: bool = True) -> None:
    """Collect, over the whole tree (or one level of it), default sizes -> the values they
    shrank to, apart for widths and for inner (feed-forward) sizes: ``links[kind][old]``."""
    for key, value in tree.items():
        if _is_subconfig(value):
            if recurse:
                _width_map(value, shrunk.get(key, {}), links)
            continue
        if key in _INTERMEDIATE:
            kind = "inner"
        elif key in (*_WIDTH, *_STAGE_WIDTHS, *_CONV_WIDTHS):
            kind = "width"
        else:
            continue
        new = shrunk.get(key, value)
        olds = value if _int_list(value) else [value]
        news = new if _int_list(new) else [new]
        for old, small in zip(olds, news, strict=False):  # a per-layer list may be cut
            if _is_int(old) and _is_int(small) and old >= _LINKED_MIN and small != old:
                links.setdefault(kind, {}).setdefault(old, set()).add(small)


def _link_of(key: str, value: int, links: dict[str, dict[int, set[int]]]) -> int | None:
    """What a default size under ``key`` shrank to elsewhere, if that is unambiguous: inner
    sizes are looked up among inner sizes first, every other size among widths first."""
    first = "inner" if _INNER_LIKE.search(key) else "width"
    for kind in (first, "width" if first == "inner" else "inner"):
        found = links.get(kind, {}).get(value)
        if found:
            return next(iter(found)) if len(found) == 1 else None
    return None


def _linked(key: str, value: Any, maps: list[dict[str, dict[int, set[int]]]]) -> Any:
    """``value`` with default sizes replaced by what they shrank to (see :func:`_width_map`),
    looked up in ``maps`` in order (the same sub-config's first, then the whole tree's).

    Group counts equal to a width (a depthwise convolution's groups) follow it too."""
    sized = _SIZE_LIKE.search(key) and not _NOT_A_WIDTH.search(key)
    if not (sized or key.endswith("groups")):
        return value

    def link(size: int) -> int | None:
        return next((found for links in maps
                     if (found := _link_of(key, size, links)) is not None), None)

    if _is_int(value):
        found = link(value)
        return value if found is None else found
    if _int_list(value):
        found_all = [link(v) for v in value]
        if any(f is not None for f in found_all):
            return [v if f is None else f for v, f in zip(value, found_all, strict=True)]
    return value


def _shrunk_tree(tree: dict[str, Any], keep: frozenset[str], prefix: str = ""
                 ) -> dict[str, Any]:
    """The tree with every sub-config (deepest first) and then itself shrunk by key name."""
    out = dict(tree)
    for key, value in tree.items():
        if _is_subconfig(value) and prefix + key not in keep:
            out[key] = _shrunk_tree(value, keep, f"{prefix}{key}.")
    for key, value in _shrink(out, _left_out(keep)).items():
        if prefix + key not in keep:
            out[key] = value
    return out


def _link_widths(tree: dict[str, Any], default: dict[str, Any],
                 links: dict[str, dict[int, set[int]]], keep: frozenset[str],
                 prefix: str = "") -> None:
    """Map size-like keys the name rules left at a linked default width (in place): to what
    the same default shrank to in the same (sub-)config first, else anywhere in the tree."""
    local: dict[str, dict[int, set[int]]] = {}
    _width_map(default, tree, local, recurse=False)
    for key, value in tree.items():
        path = prefix + key
        if path in keep:
            continue
        if _is_subconfig(value) and _is_subconfig(default.get(key)):
            _link_widths(value, default[key], links, keep, path + ".")
        elif value == default.get(key):  # untouched by the name rules
            tree[key] = _linked(key, value, [local, links])
            if tree[key] == value:
                tree[key] = _generic(key, value)


def _generic(key: str, value: Any) -> Any:
    """A large size-like value no other rule shrank, capped (``d_latents``, ``fpn_dim``)."""
    if not _SIZE_LIKE.search(key) or _NOT_A_WIDTH.search(key):
        return value
    if _is_int(value) and value >= _GENERIC_MIN:
        return TINY_INTERMEDIATE
    if _int_list(value) and max(value) >= _GENERIC_MIN:
        return [min(v, TINY_INTERMEDIATE) for v in value]
    return value


def shrunk_values(default: dict[str, Any], keep: frozenset[str] = frozenset()
                  ) -> dict[str, Any]:
    """The tiny values of a default config dict (nested dicts for sub-configs).

    :param keep: dotted key paths that keep their defaults (see the module docstring).
    """
    tree = _shrunk_tree(copy.deepcopy(default), keep)
    links: dict[str, dict[int, set[int]]] = {}
    _width_map(default, tree, links)
    _link_widths(tree, default, links, keep)
    return tree


def changed_paths(default: dict[str, Any], tiny: dict[str, Any], prefix: str = ""
                  ) -> list[str]:
    """The dotted key paths whose values differ between a default tree and its tiny one."""
    paths = []
    for key, value in tiny.items():
        old = default.get(key)
        if _is_subconfig(value) and _is_subconfig(old):
            paths.extend(changed_paths(old, value, f"{prefix}{key}."))
        elif value != old:
            paths.append(prefix + key)
    return paths


def subconfig_paths(default: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths of every sub-config of a default tree, outermost first."""
    paths = []
    for key, value in default.items():
        if _is_subconfig(value):
            paths.append(prefix + key)
            paths.extend(subconfig_paths(value, f"{prefix}{key}."))
    return paths


def _init_fields(cls: type) -> set[str] | None:
    """The keyword arguments a config class's constructor takes (``None``: any)."""
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls) if f.init}
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) and len(
            params) <= 2:
        return None
    return {name for name in params if name != "self"}


def _class_defaults(cls: type) -> dict[str, Any]:
    """The values of a config class built with no arguments ({} when it needs some)."""
    try:
        return cls().to_dict()
    except Exception:  # noqa: BLE001 - a class without defaults: every value is passed
        return {}


def _field_name(key: str, cls: type, fields: set[str] | None) -> str:
    """The constructor's name for a key of the values tree: the class's ``attribute_map``
    may serialise a field under another name (Inkling's vision ``num_hidden_layers`` as
    ``n_layers``), in either direction."""
    if fields is None or key in fields:
        return key
    aliases = getattr(cls, "attribute_map", {}) or {}
    names = [aliases.get(key)] + [name for name, alias in aliases.items() if alias == key]
    return next((name for name in names if name in fields), key)


def _constructor_values(tree: dict[str, Any], cls: type) -> dict[str, Any]:
    """The tree as constructor arguments: only the values that differ from the class's own
    defaults, so that what the class derives from them (Swin's ``hidden_size``, per-layer
    rope parameters) is derived again rather than copied."""
    from transformers import CONFIG_MAPPING

    fields = _init_fields(cls)
    defaults = _class_defaults(cls)
    out = {}
    for key, value in tree.items():
        key = _field_name(key, cls, fields)
        if _is_subconfig(value) and value["model_type"] in CONFIG_MAPPING:
            value = {"model_type": value["model_type"],
                     **_constructor_values(value, CONFIG_MAPPING[value["model_type"]])}
            out[key] = value
        elif (fields is None or key in fields) and (key not in defaults
                                                     or defaults[key] != value):
            out[key] = value
    return out


_REFUSALS: dict[int, str] = {}


def _remember_refusal(config: Any, refused: BaseException) -> None:
    """Keep why the class refused the values, for as long as ``config`` lives."""
    import weakref

    from hwaccel.kit.failures import one_line

    _REFUSALS[id(config)] = one_line(refused)
    weakref.finalize(config, _REFUSALS.pop, id(config), None)


def refusal_of(config: Any) -> str | None:
    """Why the config class refused the tiny values of ``config`` (which were then set on its
    default instance key by key), or ``None`` when it took them."""
    return _REFUSALS.get(id(config))


def build_config(model_type: str, values: dict[str, Any]) -> Any:
    """The config object of ``model_type`` built through its class from a values tree.

    Sizes the class derives are derived again. A class that cannot take the values, or whose
    validators refuse them (a rule stricter than its modeling code needs, as "key/value heads
    must equal query heads" for latent attention), gets them set on its default instance
    instead, key by key (a key that refuses keeps its default): whether the model then
    builds and runs is what the search (:mod:`hwaccel.kit.tiny_search`) checks.
    """
    from transformers import CONFIG_MAPPING, AutoConfig, PretrainedConfig

    cls = CONFIG_MAPPING[model_type]
    try:
        return cls(**{k: v for k, v in _constructor_values(values, cls).items()
                      if k != "model_type"})
    except Exception as refused:  # noqa: BLE001 - any refusal (validators raise their own)
        config = AutoConfig.for_model(model_type)
        _remember_refusal(config, refused)

        def assign(cfg: Any, tree: dict[str, Any]) -> None:
            for key, value in tree.items():
                try:  # per-layer attributes refuse a global read, validators a bad write
                    current = getattr(cfg, key, None)
                    if isinstance(current, PretrainedConfig) and isinstance(value, dict):
                        assign(current, value)
                    elif current != value:
                        setattr(cfg, key, value)
                except Exception:  # noqa: BLE001 - that key keeps its default
                    continue

        assign(config, values)
        return config


def default_values(model_type: str) -> dict[str, Any]:
    """The default config of ``model_type`` in the installed transformers, as a values tree."""
    return default_config(model_type).to_dict()


def default_config(model_type: str) -> Any:
    """The default config object of ``model_type`` in the installed transformers."""
    from transformers import AutoConfig

    from hwaccel.kit.failures import MODEL, AttributedError, one_line, raised_by_hwaccel

    try:
        return AutoConfig.for_model(model_type)
    except Exception as exc:
        if raised_by_hwaccel(exc):
            raise
        raise AttributedError(MODEL, f"the installed transformers cannot build the default "
                                     f"config of {model_type!r}: {one_line(exc)}",
                              stage="config") from exc


def apply_completions(config: Any, keep: frozenset[str]) -> None:
    """Values the default config lacks, set from where the config holds them
    (:mod:`hwaccel.kit.tiny_completion`)."""
    from hwaccel.kit.tiny_completion import apply_completions as apply

    apply(config, keep)


def tiny_config(model_type: str, keep: frozenset[str] = frozenset(),
                adjust: Callable[[dict, dict, dict], None] | None = None) -> Any:
    """Return a tiny config object of a transformers model type (fixed, deterministic).

    :param keep: dotted key paths that keep the type's defaults, and the markers of the
        relaxations and completions of :mod:`hwaccel.kit.tiny_search`.
    :param adjust: ``adjust(values, default, overrides)`` gets the top-level tiny values, the
        default values and the top-level overrides so far, and may add more (a pipeline's
        fixes for its own architectures).
    """
    default = default_values(model_type)
    values = shrunk_values(default, keep)
    if adjust is not None:
        overrides = {k: v for k, v in values.items() if default.get(k) != v}
        adjust(values, default, overrides)
        values.update({k: v for k, v in overrides.items() if k not in keep})
    config = build_config(model_type, values)
    apply_completions(config, keep)
    return config
