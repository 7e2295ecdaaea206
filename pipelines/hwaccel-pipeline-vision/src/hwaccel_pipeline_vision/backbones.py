"""Tiny-config rules that keep backbones and the configs around them consistent.

A backbone config (a ``backbone_config`` sub-config, or a config that is its own backbone)
selects the stages it hands on with ``out_indices``; DPT-style configs name the hidden
states their neck reads with ``backbone_out_indices``. The parent keeps lists with one
entry per selected stage (a neck's ``neck_hidden_sizes``, a detector's
``encoder_in_channels``). The core shrinker cuts depths and widths key by key; these rules,
applied to its values tree (:func:`tiny_config_with_stages`), keep what belongs together:

* :func:`follow_depth`: when the depth of a layer-stacking backbone (a ViT: its stages are its
  layers) is shrunk, the selection keeps its number of stages, spread evenly over the layers
  left, and the depth is raised to hold them;
* :func:`relink_within`: a backbone's channel lists keep agreeing with one another (a width
  shrunk under one key is shrunk alike under the others that hold it);
* :func:`follow_selected_stages`: a parent list that copies a backbone's per-stage list at
  the selected stages copies its tiny values;
* :func:`follow_sub_depth`: layer indices a config names for its sub-configs' layers
  (``intermediate_hook_ids``) follow their depth;
* :func:`cap_keypoints`: a keypoint detector's unbounded keypoint count is bounded;
* :func:`select_stages`: (on request) a config selects a given number of stages.

On the built config object, :func:`restore_lost` sets again what the rebuild through the
config class dropped (transformers' dataclass configs take ``out_indices`` and a
sub-config's extra settings such as ``return_class_token`` as extra keywords, which a
rebuild from declared fields drops), and :func:`lists_as_loaded` makes sequences lists, as
in a config loaded from ``config.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hwaccel_pipeline_vision.config_tree import leaf_overrides

Adjuster = Callable[[dict[str, Any], dict[str, Any], frozenset[str]], dict[str, Any]]
"""A pipeline rule over a tiny values tree: ``rule(values, default, keep)`` returns overrides
of its top-level keys (a sub-config as a whole sub-tree), leaving ``keep`` paths alone."""


# Keys of a config that count its layers; in a layer-stacking backbone a stage is a layer.
LAYER_COUNT_KEYS = ("num_hidden_layers", "num_layers")
SELECTION_SUFFIX = "out_indices"
BACKBONE_KEY = "backbone_config"
# keys of a backbone that hold channel widths (per stage or single)
_SIZE_KEY = re.compile(r"(channels|hidden_sizes|hidden_size|embedding_size)$")
HOOK_SUFFIX = "hook_ids"  # a config's indices of its sub-configs' layers
KEYPOINTS_KEY = "max_keypoints"
TINY_KEYPOINTS = 256


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)


def _ints_of(value: Any) -> list[int]:
    """The ints of a value: itself, or the members of an int list (else none)."""
    if _is_int(value):
        return [value]
    return list(value) if _int_list(value) else []


def _is_subconfig(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("model_type"), str)


def spread(count: int, depth: int, keep_stem: bool) -> list[int]:
    """``count`` stage indices spread evenly over ``depth`` layers, the last one included.

    Stage 0 is the stem (the embeddings); it stays selected when ``keep_stem``.
    """
    layers = count - int(keep_stem)
    picked = [round(depth * (k + 1) / layers) for k in range(layers)] if layers else []
    return [0] * keep_stem + picked


def _in_subconfigs(rule: Callable[..., dict[str, Any]], values: dict[str, Any],
                   default: dict[str, Any], keep: frozenset[str], prefix: str) -> dict[str, Any]:
    """The overrides ``rule(sub, default_sub, keep, prefix)`` makes in each sub-config that
    the default also has, each given as a whole sub-tree (a kept sub-config left alone)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if _is_subconfig(value) and _is_subconfig(default.get(key)):
            inner = rule(value, default[key], keep, f"{prefix}{key}.")
            if inner and prefix + key not in keep:
                out[key] = {**value, **inner}
    return out


def follow_depth(values: dict[str, Any], default: dict[str, Any], keep: frozenset[str],
                 prefix: str = "") -> dict[str, Any]:
    """The overrides of one values tree (and, as whole sub-trees, of its sub-configs) that
    keep every stage selection's length where a shrunk depth dropped its stages.

    :param values: the tiny values tree; ``default``: the type's default tree at the same
        place; ``keep``: dotted key paths that keep their defaults (left untouched).
    """
    out = _in_subconfigs(follow_depth, values, default, keep, prefix)
    layer_key = next((k for k in LAYER_COUNT_KEYS if _is_int(values.get(k))
                      and _is_int(default.get(k)) and values[k] < default[k]), None)
    if layer_key is None or prefix + layer_key in keep:
        return out
    depth, default_depth = values[layer_key], default[layer_key]
    # with stage names, index 0 is the stem and stage i the output of layer i; without,
    # the indices count the layers from 0 (DPT's ``backbone_out_indices``)
    first = 0 if isinstance(values.get("stage_names"), list) else 1
    for key, selection in values.items():
        if not (key.endswith(SELECTION_SUFFIX) and isinstance(selection, list) and selection
                and all(_is_int(i) and 0 <= i + first <= default_depth for i in selection)
                and prefix + key not in keep):
            continue
        if max(selection) + first <= depth:
            continue
        stem = first == 0 and 0 in selection
        depth = max(depth, len(selection) - int(stem))
        out[key] = [i - first for i in spread(len(selection), depth, stem)]
    if depth != values[layer_key]:
        out[layer_key] = depth
    return out


def relink_within(values: dict[str, Any], default: dict[str, Any], keep: frozenset[str],
                  prefix: str = "") -> dict[str, Any]:
    """Overrides that keep a backbone's own channel lists consistent: a default width that one
    of its size keys shrank (``hidden_sizes``: 512 -> 64) shrinks to the same value wherever
    another of its size keys still holds it (``stage_out_channels``, ``stage_in_channels``),
    whatever other sub-configs shrank that number to."""
    out = _in_subconfigs(relink_within, values, default, keep, prefix)
    if not isinstance(values.get("stage_names"), list):
        return out
    sizes = [k for k in values if _SIZE_KEY.search(k) and prefix + k not in keep]
    links: dict[int, set[int]] = {}
    for key in sizes:
        for old, new in zip(_ints_of(default.get(key)), _ints_of(values[key]), strict=False):
            if old != new:
                links.setdefault(old, set()).add(new)
    unique = {old: next(iter(new)) for old, new in links.items() if len(new) == 1}
    for key in sizes:
        before, now = default.get(key), values[key]
        if _int_list(now) and _int_list(before) and len(now) == len(before):
            linked = [unique.get(o, n) if o == n else n for o, n in zip(before, now, strict=True)]
            if linked != now:
                out[key] = linked
    return out


def follow_selected_stages(values: dict[str, Any], default: dict[str, Any],
                           keep: frozenset[str]) -> dict[str, Any]:
    """Overrides of a config's lists with one entry per stage its backbone hands on
    (``encoder_in_channels``): a list that is, by default, a per-stage list of the backbone
    (``stage_out_channels``) at the selected stages takes that list's tiny values there."""
    backbone, before = values.get(BACKBONE_KEY), default.get(BACKBONE_KEY)
    if not (_is_subconfig(backbone) and _is_subconfig(before)):
        return {}
    selected, was = backbone.get("out_indices"), before.get("out_indices")
    stages = before.get("stage_names")
    if not (_int_list(selected) and selected == was and isinstance(stages, list)):
        return {}
    per_stage = [k for k, v in before.items()
                 if _int_list(v) and len(v) == len(stages) - 1 and _int_list(backbone.get(k))]
    out: dict[str, Any] = {}
    for key, value in default.items():
        if key in keep or not _int_list(value) or len(value) != len(selected):
            continue
        for name in per_stage:
            if value == [before[name][i - 1] for i in selected]:
                tiny = [backbone[name][i - 1] for i in selected]
                if tiny != values.get(key):
                    out[key] = tiny
                break
    return out


def select_stages(count: int) -> Adjuster:
    """A rule that makes a config select ``count`` of its stages (``out_indices``), spread
    evenly over its layers, the depth raised to hold them: for a head that reads more stages
    than the type's default config selects (BEiT's segmentation head reads four)."""

    def rule(values: dict[str, Any], default: dict[str, Any], keep: frozenset[str]
             ) -> dict[str, Any]:
        layer_key = next((k for k in LAYER_COUNT_KEYS if _is_int(values.get(k))), None)
        if layer_key is None or {layer_key, "out_indices"} & keep or not isinstance(
                values.get("stage_names"), list):
            return {}
        depth = max(values[layer_key], count)
        return {layer_key: depth, "out_indices": spread(count, depth, False)}

    return rule


def follow_sub_depth(values: dict[str, Any], default: dict[str, Any], keep: frozenset[str],
                     prefix: str = "") -> dict[str, Any]:
    """Overrides of the layer indices a config names for its sub-configs' layers (DepthPro's
    ``intermediate_hook_ids``: the layers whose outputs a hook reads), mapped in proportion
    onto the layers the shrunk sub-configs keep."""
    out: dict[str, Any] = {}
    depths = set()
    for key, value in values.items():
        old = default.get(key)
        if not (_is_subconfig(value) and _is_subconfig(old)):
            continue
        inner = follow_sub_depth(value, old, keep, f"{prefix}{key}.")
        if inner and prefix + key not in keep:
            out[key] = {**value, **inner}
        layer_key = next((k for k in LAYER_COUNT_KEYS if _is_int(value.get(k))), None)
        if layer_key is not None and _is_int(old.get(layer_key)):
            depths.add((old[layer_key], value[layer_key]))
    if len(depths) != 1:
        return out
    ((default_depth, depth),) = depths
    for key, hooks in values.items():
        if (key.endswith(HOOK_SUFFIX) and prefix + key not in keep and _int_list(hooks)
                and all(0 <= i < default_depth for i in hooks) and max(hooks) >= depth):
            out[key] = [i * depth // default_depth for i in hooks]
    return out


def lists_as_loaded(config: Any, values: dict[str, Any]) -> None:
    """Turn the tuples of a built (sub-)config object into lists where its values tree holds a
    list (in place), as a config loaded from ``config.json`` holds them: a rebuild passes
    only the values that differ from the class defaults, so a default tuple would meet a
    shrunk list (DepthPro joins ``scaled_images_feature_dims`` with
    ``intermediate_feature_dims``)."""
    from transformers import PretrainedConfig

    for key, value in values.items():
        current = getattr(config, key, None)
        if _is_subconfig(value) and isinstance(current, PretrainedConfig):
            lists_as_loaded(current, value)
        elif isinstance(value, list) and isinstance(current, tuple):
            setattr(config, key, list(current))


def cap_keypoints(values: dict[str, Any], default: dict[str, Any], keep: frozenset[str],
                  prefix: str = "") -> dict[str, Any]:
    """Overrides that bound a keypoint detector's keypoints (``max_keypoints``, -1 for no
    bound) to :data:`TINY_KEYPOINTS`: a tiny detector with random weights finds keypoints
    almost everywhere, and the matchers attend across all of them."""
    return leaf_overrides(values, keep, lambda key, value: TINY_KEYPOINTS if (
        key == KEYPOINTS_KEY and _is_int(value) and not 0 <= value <= TINY_KEYPOINTS)
        else None, prefix)


def restore_lost(config: Any, values: dict[str, Any]) -> None:
    """Give each (sub-)config object the settings of the values tree it lost in the rebuild
    (in place): its stage selection, where the object's stages hold it, and every key it
    has no attribute for."""
    from transformers import PretrainedConfig

    for key, value in values.items():
        sub = getattr(config, key, None)
        if _is_subconfig(value) and isinstance(sub, PretrainedConfig):
            restore_lost(sub, value)
        elif not hasattr(config, key):
            setattr(config, key, value)
    selection = values.get("out_indices")
    stages = getattr(config, "stage_names", None)
    if (isinstance(selection, list) and isinstance(stages, list)
            and getattr(config, "out_indices", None) != selection
            and all(_is_int(i) and -len(stages) <= i < len(stages) for i in selection)):
        config.out_indices = selection


def tiny_config_with_stages(model_type: str, keep: frozenset[str],
                            *rules: Adjuster) -> Any:
    """The core's tiny config of ``model_type`` (:func:`hwaccel.kit.tiny.tiny_config`) with its
    stage selections and layer hooks kept consistent (:func:`follow_depth`,
    :func:`follow_sub_depth`, :func:`restore_lost`, :func:`lists_as_loaded`) and its
    keypoints bounded (:func:`cap_keypoints`), after the pipeline's own ``rules``."""
    from hwaccel.kit.tiny import tiny_config

    built: dict[str, Any] = {}

    def adjust(values: dict, default: dict, overrides: dict) -> None:
        for rule in (*rules, follow_depth, relink_within, follow_selected_stages,
                     follow_sub_depth, cap_keypoints):
            overrides.update(rule({**values, **overrides}, default, keep))
        built.update(values, **{k: v for k, v in overrides.items() if k not in keep})

    config = tiny_config(model_type, keep, adjust)
    restore_lost(config, built)
    lists_as_loaded(config, built)
    return config
