"""Fixes the tiny configs of multimodal types need beyond the core's shrinking.

Each is a rule keyed by what a config declares, applied to the top-level tiny values
(:func:`adjust`, the ``adjust`` hook of :func:`hwaccel.tiny.tiny_config`):

* a tower the config class declares but its defaults leave out (``vision_config: None``;
  real checkpoints have one) gets the shrunk defaults of the tower's config class;
* a placeholder token the config declares without a value (``image_token_index: None``,
  ``audio_token_id: None``: real checkpoints set the id of the token their tokenizer adds)
  gets a free id of the text vocabulary;
* a tower pooled to ``mm_tokens_per_image`` tokens (a square) needs a side that divides the
  patches per side of its image: the largest such side not above the default one;
* a vision or audio tower that projects into the language model itself
  (``out_hidden_size``, ``output_dim``) must project to the text model's width (the defaults
  of some types disagree);
* a layout embedding of four coordinate and two shape embeddings keeps filling the width
  where the default does (``4 * coordinate_size + 2 * shape_size == hidden_size``);
* a projector that reads the tower's patches merged in squares of ``merge_size`` keeps
  its input width at ``hidden_size * merge_size**2`` of the tower where the default does;
* a pixel-shuffle projector reads the tower's width folded by its ratio: ``intermediate_size
  = hidden_size / pixel_shuffle_ratio**2``;
* a pixel-shuffle connector (``scale_factor``, ``downsample_factor``, ``downsample_ratio``)
  folds patches in squares of its factor: the vision tower's ``image_size`` is raised to
  the next multiple of ``patch_size * factor``.
"""

from __future__ import annotations

import math
import re
from typing import Any

_PLACEHOLDER = re.compile(r"^(image|video|audio)_token_(id|index)$")
_SHUFFLE_FACTORS = ("scale_factor", "downsample_factor")
_SHUFFLE_RATIOS = ("downsample_ratio",)
_TOWER_OUTPUTS = ("out_hidden_size", "output_dim")


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


def _placeholder_ids(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Free ids from the top of the text vocabulary for placeholders declared as ``None``."""
    missing = sorted(key for key, value in values.items()
                     if value is None and _PLACEHOLDER.match(key))
    text = values.get("text_config") if isinstance(values.get("text_config"), dict) else {}
    vocab = _int(values.get("vocab_size")) or _int(text.get("vocab_size"))
    if not missing or vocab is None:
        return
    taken = _token_ids(values)
    free = (i for i in range(vocab - 1, -1, -1) if i not in taken)
    for key in missing:
        overrides[key] = next(free)


def _missing_towers(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Shrunk default sub-configs for the declared sub-configs left ``None``."""
    from transformers import CONFIG_MAPPING, PretrainedConfig

    from hwaccel.tiny import shrunk_values

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
    (``out_hidden_size``, ``output_dim`` of a non-text sub-config) equal to the text
    model's ``hidden_size``."""
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


def adjust(values: dict[str, Any], default: dict[str, Any], overrides: dict[str, Any]) -> None:
    """The ``adjust`` hook of :func:`hwaccel.tiny.tiny_config` (see the module docstring)."""
    _missing_towers(values, overrides)
    _placeholder_ids(values, overrides)
    _pooled_tokens(values, overrides)
    _pixel_shuffle_sizes(values, overrides)
    _tower_output_width(values, overrides)
    _default_relations(values, default, overrides)
    _merged_width(values, default, overrides)
