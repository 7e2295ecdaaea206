"""Deterministic images for vision models, and the type's own image processor that prepares them.

The images are seeded 8-bit pictures (:data:`~hwaccel.kit.tiny.TINY_SEED`), laid out as the
model takes them (:class:`Layout`): single images, image pairs (keypoint matchers) or clips
of frames (video models). A ``tiny:`` model's images go through its type's image processor
class (``IMAGE_PROCESSOR_MAPPING_NAMES``; the PIL implementation first, torchvision's only
where torchvision is installed) with its defaults aligned to the config where they must agree
(:func:`aligned_options`), whose default size (:func:`default_size`) sizes the images where
the config does not; where this machine cannot build that class, or the class needs more than
images (VitMatte's trimaps), :func:`scaled_pixels` shapes them itself, at the size the class
declares (:func:`processor_defaults`).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

from hwaccel.kit.tiny import TINY_SEED

PIXEL_LEVELS = 256  # images are 8-bit, as decoded from files
# Images without a processor are scaled to [-1, 1], as ViT-style processors do.
NORMALIZE_MEAN = 0.5
NORMALIZE_STD = 0.5
_SIZE_OPTIONS = ("size", "crop_size")


@dataclass(frozen=True)
class Layout:
    """How many pictures one example of the batch holds, and their size.

    ``pair``: two images matched against each other (``(batch, 2, C, H, W)``); ``frames``:
    a clip of that many frames (``(batch, frames, C, H, W)``); neither: one image.
    """

    height: int
    width: int
    channels: int
    frames: int | None = None
    pair: bool = False

    @property
    def per_example(self) -> int | None:
        """Pictures per example when an example is a group (pair or clip), else ``None``."""
        return 2 if self.pair else self.frames


def seeded_images(count: int, layout: Layout) -> Any:
    """Deterministic 8-bit images, a uint8 tensor ``(count, [group,] height, width, C)``."""
    import torch

    generator = torch.Generator().manual_seed(TINY_SEED)
    group = (layout.per_example,) if layout.per_example else ()
    shape = (count, *group, layout.height, layout.width, layout.channels)
    return torch.randint(0, PIXEL_LEVELS, shape, generator=generator, dtype=torch.uint8)


def scaled_pixels(images: Any) -> Any:
    """Images as float pixels in [-1, 1], channels first (``(..., C, H, W)``)."""
    pixels = images.float() / (PIXEL_LEVELS - 1)
    pixels = (pixels - NORMALIZE_MEAN) / NORMALIZE_STD
    return pixels.movedim(-1, -3).contiguous()


def pil_batch(images: Any, grouped: bool) -> list[Any]:
    """PIL versions of a uint8 image tensor: a list of images, or of groups when ``grouped``."""
    from PIL import Image

    def picture(array: Any) -> Any:
        return Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)

    arrays = images.numpy()
    if grouped:
        return [[picture(frame) for frame in group] for group in arrays]
    return [picture(image) for image in arrays]


def image_processor_class(model_type: str) -> type | None:
    """The image processor class transformers names for ``model_type`` that this machine can
    build and that prepares images alone, else ``None``."""
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
    from transformers.utils import is_torchvision_available

    entry = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type)
    if not entry:
        return None
    names = dict(entry) if isinstance(entry, dict) else {"pil": entry}
    backends = ["pil"] + (["torchvision"] if is_torchvision_available() else [])
    for backend in backends:
        cls = getattr(transformers, names.get(backend) or "", None)
        if cls is not None and _takes_images_alone(cls):
            return cls
    return None


def processor_defaults(model_type: str) -> dict[str, Any]:
    """The default settings of the image processor transformers names for ``model_type``:
    those of the class this machine can build (:func:`image_processor_class`), else the
    settings the named classes declare in their source (:func:`declared_defaults`), else
    none."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    cls = image_processor_class(model_type)
    if cls is not None:
        return cls().to_dict()
    entry = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    names = entry.values() if isinstance(entry, dict) else [entry]
    for name in names:
        declared = declared_defaults(name) if isinstance(name, str) else {}
        if declared:
            return declared
    return {}


@functools.cache
def declared_defaults(class_name: str) -> dict[str, Any]:
    """The literal settings an image processor class assigns in its class body, read from
    transformers' source without importing it: a class whose backend is missing here
    (torchvision) cannot be imported, yet its default sizes say what images it makes."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("transformers.models")
    if spec is None or not spec.submodule_search_locations:
        return {}
    marker = f"class {class_name}("
    for path in sorted(Path(next(iter(spec.submodule_search_locations))).glob(
            "*/image_processing_*.py")):
        source = path.read_text(encoding="utf-8")
        if marker not in source:
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                return _literal_assignments(node)
    return {}


def _literal_assignments(node: Any) -> dict[str, Any]:
    """``name = <literal>`` assignments of a class body."""
    import ast

    found: dict[str, Any] = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(
                statement.targets[0], ast.Name):
            try:
                found[statement.targets[0].id] = ast.literal_eval(statement.value)
            except ValueError:
                continue
    return found


def _takes_images_alone(cls: type) -> bool:
    """True when the processor's ``preprocess`` needs nothing but the images."""
    parameters = list(inspect.signature(cls.preprocess).parameters.values())[2:]
    return not any(p.default is inspect.Parameter.empty and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        for p in parameters)


def _aligned_size(current: dict[str, Any], height: int, width: int) -> dict[str, Any] | None:
    """A size option set to ``height`` x ``width`` in the option's own form (height/width or
    edges); ``None`` for forms that bound something else (pixel counts)."""
    keys = set(current)
    if keys == {"height", "width"}:
        return {"height": height, "width": width}
    if keys and keys <= {"shortest_edge", "longest_edge"}:
        edges = {"shortest_edge": min(height, width), "longest_edge": max(height, width)}
        return {key: edges[key] for key in keys}
    return None


def default_size(defaults: dict[str, Any]) -> tuple[int, int] | None:
    """``(height, width)`` of the images a processor's default settings make: its center crop
    when it crops, else its resize target (a height/width, or a square of its edge); ``None``
    when they fix no size (padding to a multiple)."""
    keys = ("crop_size", "size") if defaults.get("do_center_crop") else ("size",)
    for key in keys:
        size = defaults.get(key)
        if not isinstance(size, dict):
            continue
        if isinstance(size.get("height"), int) and isinstance(size.get("width"), int):
            return size["height"], size["width"]
        edge = size.get("shortest_edge") or size.get("longest_edge")
        if isinstance(edge, int):
            return edge, edge
    return None


def aligned_options(defaults: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """The options of an image processor (given its default settings) that must agree with
    the images: its resize and crop sizes become the layout's (the size the config fixes)."""
    options: dict[str, Any] = {}
    for key in _SIZE_OPTIONS:
        if isinstance(defaults.get(key), dict):
            value = _aligned_size(defaults[key], layout.height, layout.width)
            if value is not None and value != defaults[key]:
                options[key] = value
    return options


def class_processor(cls: type, layout: Layout) -> Any:
    """An image processor of class ``cls`` with its sizes aligned to ``layout``."""
    return cls(**aligned_options(cls().to_dict(), layout))
