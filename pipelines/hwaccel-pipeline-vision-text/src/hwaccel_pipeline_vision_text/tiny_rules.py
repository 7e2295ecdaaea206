"""Tiny-config rules of image-text models, beyond the core shrinker and the vision backbones.

Each rule takes a tiny values tree, the type's default tree and the key paths to keep, and
returns overrides of top-level keys (a sub-config as a whole sub-tree), the form
:func:`hwaccel_pipeline_vision.backbones.tiny_config_with_stages` applies:

* :func:`text_input_switches`: a sub-model that reads text only when switched on
  (``use_qformer_text_input``) is switched on, since this workload gives every model text;
* :func:`scaled_width_links`: a tower that scales its channel lists by a
  ``width_coefficient`` (EfficientNet in ALIGN) outputs the scaled width, which the parent
  copies (``projection_dim``); the parent's copy follows the shrunk, scaled width;
* :func:`shuffled_patch_grid`: a model that merges each ``f`` by ``f`` block of its vision
  tower's patches (a pixel shuffle, ``pixel_shuffle_factor``) needs a patch grid whose side
  ``f`` divides; the tower's ``image_size`` is rounded up to one.
"""

from __future__ import annotations

import re
from typing import Any

from hwaccel_pipeline_vision.config_tree import leaf_overrides

_TEXT_INPUT_SWITCH = re.compile(r"^use_\w*text_input$")
WIDTH_COEFFICIENT = "width_coefficient"
SHUFFLE_KEYS = ("pixel_shuffle_factor", "scale_factor")  # patches merged per grid side


def _is_subconfig(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("model_type"), str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text_input_switches(values: dict[str, Any], default: dict[str, Any],
                        keep: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """Overrides that switch on every ``use_<...>text_input`` flag that is off."""
    return leaf_overrides(values, keep, lambda key, value: True if (
        _TEXT_INPUT_SWITCH.match(key) and value is False) else None, prefix)


def _scaled_links(values: dict[str, Any], default: dict[str, Any]) -> dict[int, int]:
    """Scaled default widths -> scaled tiny widths of the sub-configs that scale their channel
    lists by a ``width_coefficient``."""
    links: dict[int, int] = {}
    for key, value in values.items():
        old = default.get(key)
        if not (_is_subconfig(value) and _is_subconfig(old)):
            continue
        links.update(_scaled_links(value, old))
        coefficient = value.get(WIDTH_COEFFICIENT)
        if not isinstance(coefficient, (int, float)) or coefficient in (0, 1):
            continue
        for name, widths in value.items():
            before = old.get(name)
            if not (isinstance(widths, list) and isinstance(before, list)
                    and len(widths) == len(before)):
                continue
            for small, large in zip(widths, before, strict=True):
                if _is_int(small) and _is_int(large) and small != large:
                    scaled = large * coefficient
                    if float(scaled).is_integer():
                        links[int(scaled)] = int(small * coefficient)
    return links


def scaled_width_links(values: dict[str, Any], default: dict[str, Any],
                       keep: frozenset[str]) -> dict[str, Any]:
    """Overrides of the top-level sizes whose default is a scaled width of a tower (see the
    module docstring), set to that width scaled from its tiny value."""
    links = _scaled_links(values, default)
    return {key: links[old] for key, old in default.items()
            if key not in keep and _is_int(old) and old in links
            and key.endswith(("_dim", "_size")) and values.get(key) != links[old]}


def shuffled_patch_grid(values: dict[str, Any], default: dict[str, Any],
                        keep: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """Overrides that round a vision tower's ``image_size`` up to whole blocks of the pixel
    shuffle its parent applies to the patch grid (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if _is_subconfig(value):
            inner = shuffled_patch_grid(value, default.get(key) or {}, keep,
                                        f"{prefix}{key}.")
            if inner:
                out[key] = {**value, **inner}
    factor = next((values[k] for k in SHUFFLE_KEYS if _is_int(values.get(k))), None)
    vision = values.get("vision_config")
    if not (factor and factor > 1 and _is_subconfig(vision)):
        return out
    side, patch = vision.get("image_size"), vision.get("patch_size")
    path = f"{prefix}vision_config.image_size"
    if _is_int(side) and _is_int(patch) and patch > 0 and path not in keep:
        block = patch * factor
        rounded = -(-side // block) * block
        if rounded != side:
            out["vision_config"] = {**vision, **out.get("vision_config", {}),
                                    "image_size": rounded}
    return out
