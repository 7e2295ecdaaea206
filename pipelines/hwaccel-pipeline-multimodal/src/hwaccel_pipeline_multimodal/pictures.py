"""The image and video side of a multimodal model's inputs: deterministic pictures, and the
tensors the model type's own image processor class makes of them.

The class is the one transformers names for the model type (``IMAGE_PROCESSOR_MAPPING_NAMES``),
else for a nested config's type, else for the type whose module defines the type's processor
class; its PIL implementation first (torchvision's only where torchvision is installed). Its
defaults are aligned with the config where they name the same size (:func:`aligned_options`):
patch, merge and temporal patch sizes, the image size of fixed-size towers, the channels; a
temporal patch size the config leaves out follows the model's pixel embedding
(:func:`frames_per_patch`).

A type whose image processor cannot be built here, or whose processor leaves the patching to
its full processor (its output holds no tensor the image encoder names), gets
:func:`synthetic_image_inputs`: tensors shaped from the config, in the layout the model's
image encoder accepts, with the metadata the encoder names beside the pixels (patch grids,
NaViT target sizes, pooling indices of tiled crops) made as the processor makes them, from
the settings its class declares (:func:`declared_settings`, readable without torchvision).
Clips (video-only models) are always shaped from the config (:func:`synthetic_video_inputs`):
transformers' video processors need torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from hwaccel.kit.tiny import TINY_SEED
from hwaccel_pipeline_multimodal.config_values import find, find_int, is_int, walk

IMAGE_SIZE_KEYS = ("image_size", "input_size")
"""Config keys of the side of the pictures a fixed-size tower takes."""
DEFAULT_SIDE = 224
"""Side of the pictures when neither the config nor the image processor fixes one."""
# processor options that an option of the (vision) config of another name sizes
_ALIASES = {"merge_size": ("merge_size", "spatial_merge_size"),
            "image_num_channels": ("num_channels",)}
_ALIGNED_INTS = ("patch_size", "temporal_patch_size", "merge_size", "image_size",
                 "image_num_channels")
_SIZE_OPTIONS = ("size", "crop_size", "max_image_size")
_EDGE_KEYS = ({"height", "width"}, {"shortest_edge"}, {"longest_edge"})


def image_array(height: int, width: int, index: int) -> Any:
    """A deterministic ``(height, width, 3)`` uint8 picture, different for every ``index``."""
    import numpy as np

    rng = np.random.default_rng(TINY_SEED + index)
    y, x = np.mgrid[0:height, 0:width]
    red = 255.0 * x / max(width - 1, 1)
    green = 255.0 * y / max(height - 1, 1)
    blue = 127.5 * (1 + np.sin((x + y + 16 * index) / 8.0))
    picture = np.stack([red, green, blue], axis=-1) + rng.normal(0.0, 8.0, (height, width, 3))
    return np.clip(np.roll(picture, 7 * index, axis=1), 0, 255).astype(np.uint8)


def pictures(count: int, height: int, width: int) -> list[Any]:
    """``count`` PIL pictures of :func:`image_array` (one per index)."""
    from PIL import Image

    return [Image.fromarray(image_array(height, width, i)) for i in range(count)]


def pair(value: Any) -> tuple[int, int] | None:
    """``(height, width)`` of a size that is an int, a pair or a height/width dict."""
    if is_int(value):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(is_int, value)):
        return int(value[0]), int(value[1])
    if isinstance(value, dict) and is_int(value.get("height")) and is_int(value.get("width")):
        return int(value["height"]), int(value["width"])
    return None


def _processor_model_types(model_type: str, config: Any) -> list[str]:
    """The model types whose image processor serves ``model_type`` (see the module)."""
    from transformers.models.auto.configuration_auto import (
        CONFIG_MAPPING_NAMES,
        model_type_to_module_name,
    )
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    types = [model_type] + [sub.model_type for sub in walk(config)][1:]
    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    if isinstance(name, str):
        import transformers

        module = getattr(getattr(transformers, name, None), "__module__", "").split(".")
        owner = module[-2] if len(module) > 2 else ""
        types += [t for t in CONFIG_MAPPING_NAMES if model_type_to_module_name(t) == owner]
    return list(dict.fromkeys(types))


def declared_settings(model_type: str, config: Any) -> dict[str, Any]:
    """The settings the type's image processor class declares (its class attributes), read
    without building it: also for a class this machine cannot run (torchvision's only,
    where its module imports without torchvision); empty when none can be read."""
    import importlib

    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    for owner in _processor_model_types(model_type, config):
        entry = IMAGE_PROCESSOR_MAPPING_NAMES.get(owner)
        names = list(entry.values()) if isinstance(entry, dict) else [entry] if entry else []
        for name in names:
            placeholder = getattr(transformers, name or "", None)  # a dummy when unrunnable
            if placeholder is None:
                continue
            try:
                module = importlib.import_module(
                    type.__getattribute__(placeholder, "__module__"))
            except ImportError:  # the module itself imports torchvision
                continue
            cls = getattr(module, name, None)
            if cls is None:
                continue
            values = {key: getattr(cls, key) for key in dir(cls) if not key.startswith("_")}
            return {key: value for key, value in values.items()
                    if not callable(value) and not isinstance(value, property)}
    return {}


def image_processor_class(model_type: str, config: Any) -> type | None:
    """The image processor class of ``model_type`` this machine can run, else ``None``."""
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
    from transformers.utils import is_torchvision_available

    for owner in _processor_model_types(model_type, config):
        entry = IMAGE_PROCESSOR_MAPPING_NAMES.get(owner)
        if not entry:
            continue
        names = dict(entry) if isinstance(entry, dict) else {"pil": entry}
        backends = ["pil"] + (["torchvision"] if is_torchvision_available() else [])
        for backend in backends:
            cls = getattr(transformers, names.get(backend) or "", None)
            if cls is not None:
                return cls
        return None
    return None


def _aligned_size(current: dict, size: tuple[int, int]) -> dict | None:
    """A size option with the config's image size, in the option's own form (``None`` when
    the form is not an edge or a height/width, e.g. pixel-count bounds)."""
    keys = set(current)
    height, width = size
    if keys == {"height", "width"}:
        return {"height": height, "width": width}
    if keys in _EDGE_KEYS:
        return {next(iter(keys)): height}
    return None


def aligned_options(defaults: dict[str, Any], config: Any) -> dict[str, Any]:
    """The options of an image processor (given its default settings) that the config sizes
    otherwise: integer sizes of the same name (``patch_size``, ``merge_size`` from
    ``spatial_merge_size``, ...), a height/width ``patch_size`` from an integer one, the edge
    or height/width of ``size``/``crop_size``/``max_image_size`` from ``image_size``; a
    ``max_image_size`` in patches the projector has a query count for
    (``projector_patch_to_query_dict``); and OCR switched off (the workload brings its own
    words)."""
    options: dict[str, Any] = {}
    for key in _ALIGNED_INTS:
        value = find_int(config, *_ALIASES.get(key, (key,)))
        if value is not None and is_int(defaults.get(key)) and defaults[key] != value:
            options[key] = value
    patch = find_int(config, "patch_size")
    if patch is not None and isinstance(defaults.get("patch_size"), dict) and set(
            defaults["patch_size"]) == {"height", "width"}:
        options["patch_size"] = {"height": patch, "width": patch}
    image_size = pair(find(config, *IMAGE_SIZE_KEYS))
    if image_size is not None:
        for key in _SIZE_OPTIONS:
            if isinstance(defaults.get(key), dict):
                value = _aligned_size(defaults[key], image_size)
                if value is not None and value != defaults[key]:
                    options[key] = value
    table = find(config, "projector_patch_to_query_dict")
    if isinstance(table, dict) and table and patch is not None and is_int(
            defaults.get("max_image_size")):  # pictures padded to a side the projector knows
        options["max_image_size"] = math.isqrt(min(int(k) for k in table)) * patch
    if defaults.get("apply_ocr"):
        options["apply_ocr"] = False
    return options


def frames_per_patch(model: Any) -> int | None:
    """Frames the model's pixel embedding folds into one patch: the time kernel of its first
    3-D convolution over pictures, 1 when that is a 2-D one, ``None`` when it has neither."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d) and module.in_channels <= 4:
            return int(module.kernel_size[0])
        if isinstance(module, torch.nn.Conv2d) and module.in_channels <= 4:
            return 1
    return None


def fixed_side(defaults: dict[str, Any]) -> int | None:
    """The side of the square pictures an image processor with these settings makes
    (``max_image_size``, else a square ``crop_size``/``size``), else ``None``."""
    for key in reversed(_SIZE_OPTIONS):
        size = pair(defaults.get(key))
        if size is not None and size[0] == size[1]:
            return size[0]
    return None


def image_processor(model_type: str, config: Any, model: Any) -> Any | None:
    """The type's image processor with its defaults aligned to ``config`` (and a
    ``temporal_patch_size`` the config leaves out to the model's :func:`frames_per_patch`),
    else ``None``."""
    cls = image_processor_class(model_type, config)
    if cls is None:
        return None
    defaults = cls().to_dict()
    options = aligned_options(defaults, config)
    if is_int(defaults.get("temporal_patch_size")) and find_int(
            config, "temporal_patch_size") is None:
        frames = frames_per_patch(model)
        if frames is not None and frames != defaults["temporal_patch_size"]:
            options["temporal_patch_size"] = frames
    return cls(**options)


def picture_size(config: Any, processor: Any | None) -> tuple[int, int]:
    """``(height, width)`` of the pictures: the processor's fixed height/width (``crop_size``,
    then ``size``); else, for a processor that resizes any picture itself (edge or pixel
    bounds), :data:`DEFAULT_SIDE`; without a processor, the config's image size."""
    if processor is None:
        return pair(find(config, *IMAGE_SIZE_KEYS)) or (DEFAULT_SIDE, DEFAULT_SIDE)
    for key in ("crop_size", "size"):
        size = pair(getattr(processor, key, None))
        if size is not None:
            return size
    return DEFAULT_SIDE, DEFAULT_SIDE


def _scaled(batch: int, height: int, width: int, channels: int) -> Any:
    """``(batch, channels, height, width)`` float pictures scaled to [-1, 1]."""
    import numpy as np
    import torch

    arrays = np.stack([image_array(height, width, i) for i in range(batch)])
    pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if channels <= 3:
        return pixels[:, :channels].contiguous()
    return pixels.repeat(1, -(-channels // 3), 1, 1)[:, :channels].contiguous()


def _temporal_factors(config: Any) -> list[int]:
    """Frames per patch to try: every ``*temporal*`` size the config declares, then 1 and 2."""
    declared = [value for scope in walk(config) for key, value in vars(scope).items()
                if "temporal" in key and is_int(value) and value > 0]
    return list(dict.fromkeys([*declared, 1, 2]))


def _patch_sizes(config: Any, patch: int) -> list[int]:
    """Patch sides to try: the patch itself, then patches pooled by each ``*kernel*`` size
    the config declares (towers that take pooled squares of patches)."""
    kernels = [value for scope in walk(config) for key, value in vars(scope).items()
               if "kernel" in key and is_int(value) and value > 1]
    return list(dict.fromkeys([patch, *(patch * k for k in kernels)]))


def _pooling_windows(side: int, pool: tuple[int, int]) -> Any:
    """The indices of a ``side`` by ``side`` grid of patches grouped in windows of ``pool``
    patches, one row per window: the grid padded with -1 evenly on both sides to whole
    windows, windows in row-major order."""
    import torch

    grid = torch.arange(side * side).reshape(side, side)
    rows, cols = -(-side // pool[0]), -(-side // pool[1])
    pad_h, pad_w = rows * pool[0] - side, cols * pool[1] - side
    grid = torch.nn.functional.pad(grid, (pad_w // 2, pad_w - pad_w // 2,
                                          pad_h // 2, pad_h - pad_h // 2), value=-1)
    return grid.reshape(rows, pool[0], cols, pool[1]).permute(0, 2, 1, 3).reshape(
        rows * cols, pool[0] * pool[1])


def _pooled_crops(config: Any, batch: int,
                  settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The layout of a processor that tiles each picture into crops and lists which patches
    each image token pools (``image_token_pooling`` with ``image_grids``): a picture the
    size of one crop, tiled 1 by 1, so its crops are its global view and its one tile (the
    same picture), each ``(patches, patch**2 * channels)``; the patch indices of each crop
    in windows of the processor's declared ``pooling_size`` (the tile's after the global
    view's), each crop's grid of windows, and the crops per picture."""
    import torch

    channels = find_int(config, "num_channels", "in_channels") or 3
    patch = find_int(config, "patch_size") or 14
    height, _ = pair(find(config, *IMAGE_SIZE_KEYS)) or (DEFAULT_SIDE, DEFAULT_SIDE)
    pool = tuple(settings.get("pooling_size") or (2, 2))
    side = height // patch
    pixels = _scaled(batch, side * patch, side * patch, channels)
    patches = pixels.reshape(batch, channels, side, patch, side, patch).permute(
        0, 2, 4, 3, 5, 1).reshape(batch, side * side, patch * patch * channels)
    windows = _pooling_windows(side, (int(pool[0]), int(pool[1])))
    per_picture = torch.cat([windows, torch.where(windows >= 0, windows + side * side, -1)])
    rows, cols = -(-side // int(pool[0])), -(-side // int(pool[1]))
    yield {"pixel_values": torch.stack([patches, patches], dim=1),
           "image_token_pooling": per_picture.repeat(batch, 1),
           "image_grids": torch.tensor([[rows, cols, rows, cols]] * batch),
           "image_num_crops": torch.full((batch,), 2)}


def _navit_patches(config: Any, batch: int) -> Iterator[dict[str, Any]]:
    """The layout of a processor that packs the patches of every picture NaViT-style
    (``target_sizes``): ``(1, channels, patch_size, patches * patch_size)``, the patches of
    the pictures one after the other, with each picture's ``(rows, cols)`` in patches; for
    square pictures of the config's image size, then of that many patches rounded down to
    even and to a multiple of 4 (merges of squares of 2 patches, once or twice)."""
    import torch

    channels = find_int(config, "num_channels", "in_channels") or 3
    patch = find_int(config, "patch_size") or 14
    height, _ = pair(find(config, *IMAGE_SIZE_KEYS)) or (DEFAULT_SIDE, DEFAULT_SIDE)
    patches = height // patch
    for side in dict.fromkeys(patches // m * m for m in (1, 2, 4) if patches >= m):
        pixels = _scaled(batch, side * patch, side * patch, channels)
        packed = pixels.reshape(batch, channels, side, patch, side, patch).permute(
            1, 3, 0, 2, 4, 5).reshape(1, channels, patch, batch * side * side * patch)
        yield {"pixel_values": packed,
               "target_sizes": torch.tensor([[side, side]] * batch, dtype=torch.int32)}


def _patch_layouts(config: Any, names: set[str], batch: int,
                   settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Candidate tensors of ``batch`` pictures, in the layouts :func:`synthetic_image_inputs`
    tries (see there)."""
    import torch

    channels = find_int(config, "num_channels", "in_channels") or 3
    patch = find_int(config, "patch_size") or 14
    height, width = pair(find(config, *IMAGE_SIZE_KEYS)) or (DEFAULT_SIDE, DEFAULT_SIDE)
    if {"image_token_pooling", "image_grids"} <= names:
        yield from _pooled_crops(config, batch, settings)
        return
    if "target_sizes" in names:
        yield from _navit_patches(config, batch)
        return
    grid_key = next((key for key in ("image_grid_thw", "image_grid_hw") if key in names), None)
    if grid_key is not None:
        merge = find_int(config, "spatial_merge_size", "merge_size") or 1
        side = 2 * merge
        pixels = _scaled(batch, side * patch, side * patch, channels)
        squares = pixels.reshape(batch, channels, side, patch, side, patch).permute(
            0, 2, 4, 1, 3, 5).reshape(batch * side * side, channels, patch, patch)
        grid = torch.tensor([[1, side, side] if grid_key == "image_grid_thw" else [side, side]]
                            * batch)
        for frames in _temporal_factors(config):
            flat = squares.reshape(len(squares), -1).repeat_interleave(frames, dim=1)
            yield {"pixel_values": flat, grid_key: grid}
        yield {"pixel_values": squares, grid_key: grid}
        yield {"pixel_values": squares.permute(0, 2, 3, 1).reshape(-1, channels), grid_key: grid}
        if merge > 1:  # merged squares channels-last, the grid counted in merged squares
            blocks = pixels.reshape(batch, channels, 2, merge * patch, 2, merge * patch).permute(
                0, 2, 4, 3, 5, 1).reshape(batch * 4, merge * patch, merge * patch, channels)
            merged = torch.tensor([[1, 2, 2] if grid_key == "image_grid_thw" else [2, 2]] * batch)
            yield {"pixel_values": blocks, grid_key: merged}
        return
    if "spatial_shapes" in names:
        rows, cols = height // patch, width // patch
        pixels = _scaled(batch, rows * patch, cols * patch, channels)
        patches = pixels.reshape(batch, channels, rows, patch, cols, patch).permute(
            0, 2, 4, 3, 5, 1).reshape(batch, rows * cols, patch * patch * channels)
        yield {"pixel_values": patches, "spatial_shapes": torch.tensor([[rows, cols]] * batch),
               "pixel_attention_mask": torch.ones(batch, rows * cols, dtype=torch.bool)}
        return
    if "image_position_ids" in names:
        for size in _patch_sizes(config, patch):
            rows, cols = max(height // size, 1), max(width // size, 1)
            pixels = _scaled(batch, rows * size, cols * size, channels)
            patches = pixels.reshape(batch, channels, rows, size, cols, size).permute(
                0, 2, 4, 3, 5, 1).reshape(batch, rows * cols, size * size * channels)
            y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
            positions = torch.stack([x.flatten(), y.flatten()], dim=-1)
            yield {"pixel_values": patches,
                   "image_position_ids": positions.unsqueeze(0).expand(batch, -1, -1).clone()}
        return
    sizes = {"image_sizes": torch.tensor([[height, width]] * batch)} \
        if "image_sizes" in names else {}
    pixels = _scaled(batch, height, width, channels)
    yield {"pixel_values": pixels, **sizes}
    yield {"pixel_values": pixels.unsqueeze(1), **sizes}
    rows, cols = height // patch, width // patch
    patches = pixels[:, :, :rows * patch, :cols * patch].reshape(
        batch, channels, rows, patch, cols, patch).permute(0, 2, 4, 3, 5, 1)
    yield {"pixel_values": patches.reshape(batch, rows * cols, patch * patch * channels),
           **sizes}
    squares = patches.reshape(batch * rows * cols, 1, patch, patch, channels)
    for frames in _temporal_factors(config):
        yield {"pixel_values": squares.expand(-1, frames, -1, -1, -1).contiguous(), **sizes}


def synthetic_image_inputs(config: Any, model: Any, batch: int, extras: dict[str, Any],
                           settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pixel tensors shaped from the config for ``batch`` pictures, in the first of these
    layouts the model's image encoder (``get_image_features``) accepts:

    * when it takes ``image_token_pooling`` and ``image_grids``: one crop-sized picture's
      global view and tile with the patches each image token pools, in windows of the
      ``pooling_size`` of the processor's ``settings`` (:func:`_pooled_crops`);
    * when it takes ``target_sizes``: the patches of all pictures packed NaViT-style with
      each picture's grid (:func:`_navit_patches`);
    * when it takes ``image_grid_thw`` / ``image_grid_hw``: flattened patches of a grid of
      ``2 * merge`` by ``2 * merge`` patches per picture, ``(patches, channels * frames *
      patch_size**2)`` for each frames-per-patch of :func:`_temporal_factors`, else square
      patches ``(patches, channels, patch_size, patch_size)``, else their pixels
      channels-last ``(patches * patch_size**2, channels)``, with the grid of each; else the
      squares of ``merge`` by ``merge`` patches channels-last, with a grid that counts them;
    * when it takes ``image_position_ids``: ``(batch, patches, patch**2 * channels)`` with
      each patch's ``(x, y)``, for the patch size and its pooled multiples
      (:func:`_patch_sizes`);
    * when it takes ``spatial_shapes``: ``(batch, patches, patch_size**2 * channels)`` with
      each picture's patch grid and a ``pixel_attention_mask`` of ones;
    * otherwise pictures ``(batch, channels, height, width)`` of the config's image size
      (:data:`DEFAULT_SIDE` where it gives none), else one picture per row on an axis of its
      own, else each picture as a sequence of flattened patches ``(batch, patches,
      patch_size**2 * channels)``, else every picture's patches with their frames,
      channels-last ``(batch * patches, frames, patch_size, patch_size, channels)`` (a
      hierarchical patch encoder's, for each frames-per-patch of :func:`_temporal_factors`);
      with their ``image_sizes`` where the encoder takes them.

    The encoder gets the side inputs of ``extras`` it names. A model without an image
    encoder method gets the first layout; when the encoder refuses every one, the refusal
    that got furthest is raised (:func:`~hwaccel_pipeline_multimodal.prompts.furthest`).
    """
    import torch

    from hwaccel_pipeline_multimodal.prompts import feature_method, furthest, named_parameters

    method = feature_method(model, "image")
    names = named_parameters(method) if method is not None else set()
    refusals: list[Exception] = []
    candidates = list(_patch_layouts(config, names, batch, settings or {}))
    if method is None:
        return candidates[0]
    for candidate in candidates:
        try:
            with torch.inference_mode():
                method(**{k: v for k, v in {**extras, **candidate}.items() if k in names})
        except Exception as exc:  # noqa: BLE001 - the encoder refused this layout
            refusals.append(exc)
            continue
        return candidate
    raise furthest(refusals)


def synthetic_video_inputs(config: Any, model: Any, batch: int,
                           extras: dict[str, Any]) -> dict[str, Any]:
    """Clips shaped from the config for ``batch`` rows: ``(batch, frames, channels, height,
    width)`` pictures of the config's image size, under the name of the first pixel
    parameter of the model's video encoder (``get_video_features``), for each frame count
    the config declares (``*frames*``), then 4 and 8; the first the encoder accepts (given
    the side inputs ``extras`` it names) is taken, else the refusal that got furthest is
    raised."""
    import torch

    from hwaccel_pipeline_multimodal.prompts import feature_method, furthest, named_parameters

    method = feature_method(model, "video")
    names = named_parameters(method) if method is not None else {"pixel_values_videos"}
    key = next((name for name in ("pixel_values_videos", "pixel_values") if name in names),
               "pixel_values_videos")
    channels = find_int(config, "num_channels", "in_channels") or 3
    height, width = pair(find(config, *IMAGE_SIZE_KEYS)) or (DEFAULT_SIDE, DEFAULT_SIDE)
    declared = [value for scope in walk(config) for name, value in vars(scope).items()
                if "frames" in name and is_int(value) and value > 0]
    refusals: list[Exception] = []
    for frames in dict.fromkeys([*declared, 4, 8]):
        clips = _scaled(batch * frames, height, width, channels).reshape(
            batch, frames, channels, height, width)
        if method is None:
            return {key: clips}
        try:
            with torch.inference_mode():
                method(**{key: clips, **{k: v for k, v in extras.items() if k in names}})
        except Exception as exc:  # noqa: BLE001 - the encoder refused this clip length
            refusals.append(exc)
            continue
        return {key: clips}
    raise furthest(refusals)
