"""Fixes the tiny configs of multimodal types need beyond the core's shrinking.

Each is a rule keyed by what a config declares, applied to the top-level tiny values
(:func:`adjust`, the ``adjust`` hook of :func:`hwaccel.kit.tiny.tiny_config`):

* a tower the config class declares but its defaults leave out (``vision_config: None``;
  real checkpoints have one) gets the shrunk defaults of the tower's config class;
* a placeholder token the config declares without a value (``image_token_index: None``,
  ``audio_token_id: None``: real checkpoints set the id of the token their tokenizer adds),
  or under a name of its own beyond the text vocabulary (``image_patch_id``, which the
  config's ``attribute_map`` reads ``image_token_id`` from), gets a free id of the text
  vocabulary;
* a tower pooled to ``mm_tokens_per_image`` tokens (a square) needs a side that divides the
  patches per side of its image: the largest such side not above the default one;
* a vision or audio tower (or adapter) that projects into the language model itself
  (``out_hidden_size``, ``output_dim``, ``text_hidden_size``) must project to the text
  model's width (the defaults of some types disagree);
* a layout embedding of four coordinate and two shape embeddings keeps filling the width
  where the default does (``4 * coordinate_size + 2 * shape_size == hidden_size``);
* a projector that reads the tower's patches merged in squares of ``merge_size`` keeps
  its input width at ``hidden_size * merge_size**2`` of the tower where the default does;
* a pixel-shuffle projector reads the tower's width folded by its ratio: ``intermediate_size
  = hidden_size / pixel_shuffle_ratio**2``;
* a list of the indices of layers whose outputs are read (``intermediate_layers_indices``
  of a tower; ``vision_feature_layer`` of an adapter, which indexes the tower its name
  starts with) keeps those within the shrunk depth (at least the last layer), and a width
  the default sets to ``hidden_size`` times one more than their number (the last layer's
  output concatenated with theirs: ``vision_output_dim``) follows;
* a pixel-shuffle connector (``scale_factor``, ``downsample_factor``, ``downsample_ratio``)
  folds patches in squares of its factor: the vision tower's ``image_size`` is raised to
  the next multiple of ``patch_size * factor``;
* a projector whose query counts are keyed by patch counts (``projector_patch_to_query_dict``)
  counts the patches of the pictures the type's image processor makes at its fixed size
  (Aria's 490 or 980 px, nothing else): the vision ``patch_size`` is the one, nearest the
  shrunk size, that cuts the processor's default side into a count of the table.
"""

from __future__ import annotations

import math
import re
from typing import Any

_PLACEHOLDER = re.compile(r"^(image|video|audio)_token_(id|index)$")
_SHUFFLE_FACTORS = ("scale_factor", "downsample_factor")
_SHUFFLE_RATIOS = ("downsample_ratio",)
_TOWER_OUTPUTS = ("out_hidden_size", "output_dim", "text_hidden_size")
_DEPTHS = ("num_hidden_layers", "num_layers")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _token_ids(tree: dict[str, Any]) -> set[int]:
    """Every integer token id of a values tree (sub-configs included)."""
    ids: set[int] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            ids |= _token_ids(value)
        elif isinstance(key, str) and key.endswith(("_token_id", "_token_index")):
            values = value if isinstance(value, list) else [value]
            ids.update(v for v in values if _int(v) is not None)
    return ids


def _placeholder_keys(values: dict[str, Any]) -> list[str]:
    """The keys of the placeholder tokens: ``image_token_id``-like keys, and the keys the
    config class's ``attribute_map`` reads such a name from (Molmo2's ``image_patch_id``)."""
    from transformers import CONFIG_MAPPING

    model_type = values.get("model_type")
    cls = CONFIG_MAPPING[model_type] if model_type in CONFIG_MAPPING else None
    aliases = {target for name, target in (getattr(cls, "attribute_map", None) or {}).items()
               if _PLACEHOLDER.match(name)}
    return sorted(key for key in values
                  if isinstance(key, str) and (_PLACEHOLDER.match(key) or key in aliases))


def _placeholder_ids(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Free ids from the top of the text vocabulary for placeholders declared as ``None``
    or outside the vocabulary."""
    text = values.get("text_config") if isinstance(values.get("text_config"), dict) else {}
    vocab = _int(values.get("vocab_size")) or _int(text.get("vocab_size"))
    if vocab is None:
        return
    missing = [key for key in _placeholder_keys(values)
               if values[key] is None or (_int(values[key]) or 0) >= vocab]
    if not missing:
        return
    taken = _token_ids(values)
    free = (i for i in range(vocab - 1, -1, -1) if i not in taken)
    for key in missing:
        overrides[key] = next(free)


def _missing_towers(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Shrunk default sub-configs for the declared sub-configs left ``None``."""
    from transformers import CONFIG_MAPPING, PretrainedConfig

    from hwaccel.kit.tiny import shrunk_values

    model_type = values.get("model_type")
    cls = CONFIG_MAPPING[model_type] if model_type in CONFIG_MAPPING else None
    for key, sub in (getattr(cls, "sub_configs", None) or {}).items():
        if values.get(key) is None and isinstance(sub, type) and issubclass(
                sub, PretrainedConfig) and getattr(sub, "model_type", ""):
            overrides[key] = shrunk_values(sub().to_dict())


def _vision(values: dict[str, Any]) -> tuple[dict[str, Any], int, int] | None:
    """The vision sub-config values with their integer image and patch sizes."""
    vision = values.get("vision_config")
    if not isinstance(vision, dict):
        return None
    image, patch = _int(vision.get("image_size")), _int(vision.get("patch_size"))
    if image is None or patch is None or patch <= 0:
        return None
    return vision, image, patch


def _pooled_tokens(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """``mm_tokens_per_image`` a square whose side divides the patches per side, in the
    config and in each sub-config that has its own vision tower (an encoder's)."""
    scopes = [("", values)] + [(key, value) for key, value in values.items()
                               if isinstance(value, dict) and "mm_tokens_per_image" in value]
    for key, scope in scopes:
        tokens = _int(scope.get("mm_tokens_per_image"))
        vision = _vision(scope)
        if tokens is None or vision is None:
            continue
        _, image, patch = vision
        patches = image // patch
        side = math.isqrt(tokens)
        if patches and (side * side != tokens or patches % side):
            side = max(d for d in range(1, min(side, patches) + 1) if patches % d == 0)
            if key:
                overrides[key] = {**scope, **overrides.get(key, {}),
                                  "mm_tokens_per_image": side * side}
            else:
                overrides["mm_tokens_per_image"] = side * side


def _shuffle_factor(values: dict[str, Any]) -> int | None:
    for key in _SHUFFLE_FACTORS:
        factor = _int(values.get(key))
        if factor is not None and factor >= 2:
            return factor
    for key in _SHUFFLE_RATIOS:
        ratio = values.get(key)
        if isinstance(ratio, float) and 0 < ratio < 1:
            return round(1 / ratio)
    return None


def _pixel_shuffle_sizes(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """The vision ``image_size`` a multiple of ``patch_size`` times the shuffle factor."""
    factor, vision = _shuffle_factor(values), _vision(values)
    if factor is None or vision is None:
        return
    config, image, patch = vision
    patches = image // patch
    if patches % factor:
        size = -(-patches // factor) * factor * patch
        overrides["vision_config"] = {**config, **overrides.get("vision_config", {}),
                                      "image_size": size}


def _tower_output_width(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """The output width of each tower that projects into the language model itself
    (``out_hidden_size``, ``output_dim``, ``text_hidden_size`` of a non-text sub-config)
    equal to the text model's ``hidden_size``."""
    text = values.get("text_config")
    width = _int(text.get("hidden_size")) if isinstance(text, dict) else None
    if width is None:
        return
    for key, value in values.items():
        tower = overrides.get(key, value)
        if key == "text_config" or not isinstance(tower, dict):
            continue
        for name in _TOWER_OUTPUTS:
            if _int(tower.get(name)) not in (None, width):
                tower = {**tower, name: width}
                overrides[key] = tower


def _layout_embedding_sizes(tree: dict[str, Any], default: dict[str, Any],
                            out: dict[str, Any]) -> None:
    """``coordinate_size``/``shape_size`` that fill the width as in the default config."""
    width, old_width = _int(tree.get("hidden_size")), _int(default.get("hidden_size"))
    coordinate, shape = _int(default.get("coordinate_size")), _int(default.get("shape_size"))
    if None in (width, old_width, coordinate, shape) or 4 * coordinate + 2 * shape != old_width:
        return
    if width != old_width and width % 8 == 0:
        out.update(coordinate_size=width // 8, shape_size=width // 4)


def _shuffle_projector_width(tree: dict[str, Any], default: dict[str, Any],
                             out: dict[str, Any]) -> None:
    """``intermediate_size`` the width folded by the pixel shuffle (the projector's input;
    real checkpoints have it so, some default configs not)."""
    ratio = default.get("pixel_shuffle_ratio")
    width = _int(tree.get("hidden_size"))
    if isinstance(ratio, float) and 0 < ratio < 1 and width is not None and _int(
            tree.get("intermediate_size")) is not None:
        out["intermediate_size"] = round(width / ratio**2)


def _merged_width(values: dict[str, Any], default: dict[str, Any],
                  overrides: dict[str, Any]) -> None:
    """Top-level widths the default sets to the vision width times the merged patches."""
    vision, old = values.get("vision_config"), default.get("vision_config")
    if not isinstance(vision, dict) or not isinstance(old, dict):
        return
    merge = _int(old.get("spatial_merge_size")) or _int(old.get("merge_size"))
    width, old_width = _int(vision.get("hidden_size")), _int(old.get("hidden_size"))
    if merge is None or width is None or old_width is None:
        return
    for key, value in default.items():
        if ("hidden_size" in key or key.endswith("_dim")) and _int(value) == old_width * \
                merge * merge:
            overrides[key] = width * merge * merge


def _depth(tree: Any) -> int | None:
    """The number of layers a (sub-)config's values declare."""
    if not isinstance(tree, dict):
        return None
    return next((_int(tree.get(k)) for k in _DEPTHS if _int(tree.get(k))), None)


def _indexed_tower(key: str, tree: dict[str, Any], root: dict[str, Any]) -> str | None:
    """The sub-config whose layers the list ``key`` of ``tree`` indexes: the tower its name
    starts with (``vision_feature_layer`` -> ``vision_config``), else ``tree`` itself
    (``None``)."""
    tower = f"{key.split('_')[0]}_config"
    return tower if isinstance(root.get(tower), dict) and root.get(tower) is not tree else None


def _returned_layers(tree: dict[str, Any], default: dict[str, Any], root: dict[str, Any],
                     root_default: dict[str, Any]) -> dict[str, Any]:
    """For each list of layer indices (``*layer*``) of ``tree`` that the shrunk depth of the
    layers it indexes leaves partly out of range: those within it, else the last layer; and
    a width the default sets to ``hidden_size`` times one more than their number (the last
    layer's output concatenated with theirs) follows."""
    changed: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str) or "layer" not in key or key.startswith("num_") or \
                not isinstance(value, list) or not value or \
                not all(_int(v) is not None and v >= 0 for v in value):
            continue
        tower = _indexed_tower(key, tree, root)
        depth = _depth(root_default.get(tower) if tower else default)
        tiny = _depth(root.get(tower) if tower else tree)
        if depth is None or tiny is None or max(value) >= depth or max(value) < tiny:
            continue
        changed[key] = kept = [v for v in value if v < tiny] or [tiny - 1]
        width, old_width = _int(tree.get("hidden_size")), _int(default.get("hidden_size"))
        for name, old in default.items():
            if None not in (width, old_width) and name != "hidden_size" and \
                    _int(old) == old_width * (len(value) + 1):
                changed[name] = width * (len(kept) + 1)
    return changed


def _layer_indices(values: dict[str, Any], default: dict[str, Any],
                   overrides: dict[str, Any]) -> None:
    """:func:`_returned_layers` in the config itself and in each of its sub-configs."""
    overrides.update(_returned_layers(values, default, values, default))
    for key, sub in values.items():
        if isinstance(sub, dict) and isinstance(default.get(key), dict):
            changed = _returned_layers(sub, default[key], values, default)
            if changed:
                overrides[key] = {**sub, **overrides.get(key, {}), **changed}



def _default_relations(values: dict[str, Any], default: dict[str, Any],
                       overrides: dict[str, Any]) -> None:
    """The relations of :func:`_layout_embedding_sizes` and :func:`_shuffle_projector_width`,
    in the config itself and in each of its sub-configs."""
    own: dict[str, Any] = {}
    for rule in (_layout_embedding_sizes, _shuffle_projector_width):
        rule(values, default, own)
    overrides.update(own)
    for key, sub in values.items():
        if isinstance(sub, dict) and isinstance(default.get(key), dict):
            changed: dict[str, Any] = {}
            for rule in (_layout_embedding_sizes, _shuffle_projector_width):
                rule(sub, default[key], changed)
            if changed:
                overrides[key] = {**sub, **overrides.get(key, {}), **changed}


def _processor_side(model_type: Any) -> int | None:
    """The side of the square pictures the type's image processor makes with its defaults
    (:func:`~hwaccel_pipeline_multimodal.pictures.fixed_side`), else ``None``."""
    from transformers import CONFIG_MAPPING

    from hwaccel_pipeline_multimodal.pictures import fixed_side, image_processor_class

    if model_type not in CONFIG_MAPPING:
        return None
    cls = image_processor_class(model_type, CONFIG_MAPPING[model_type]())
    return fixed_side(cls().to_dict()) if cls is not None else None


def _patch_counted_projector(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """A vision ``patch_size`` that cuts the image processor's pictures into a patch count
    of the ``*patch_to_*`` table that keys the projector: the one nearest the shrunk size."""
    tables = [value for key, value in values.items()
              if "patch_to_" in key and isinstance(value, dict) and value]
    vision = _vision(values)
    if not tables or vision is None:
        return
    side = _processor_side(values.get("model_type"))
    sides = [math.isqrt(int(count)) for count in tables[0] if str(count).isdigit()]
    patches = [side // n for n in sides if side and n and side % n == 0]
    if not patches or vision[2] in patches:
        return
    patch = min(patches, key=lambda size: (abs(size - vision[2]), -size))
    overrides["vision_config"] = {**vision[0], **overrides.get("vision_config", {}),
                                  "patch_size": patch}


def adjust(values: dict[str, Any], default: dict[str, Any], overrides: dict[str, Any]) -> None:
    """The ``adjust`` hook of :func:`hwaccel.kit.tiny.tiny_config` (see the module docstring)."""
    _missing_towers(values, overrides)
    _placeholder_ids(values, overrides)
    _pooled_tokens(values, overrides)
    _pixel_shuffle_sizes(values, overrides)
    _tower_output_width(values, overrides)
    _default_relations(values, default, overrides)
    _merged_width(values, default, overrides)
    _layer_indices(values, default, overrides)
    _patch_counted_projector(values, overrides)
