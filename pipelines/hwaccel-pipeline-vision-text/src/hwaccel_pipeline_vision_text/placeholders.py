"""Image placeholders in the prompts of document retrievers (ColPali, ColModernVBert).

A retriever built on a vision-language model reads the page image as features merged into the
prompt's embeddings at the positions of the config's image token, one token per feature, and
checks that the counts agree. :func:`features_per_image` asks the model itself: it runs the
model's ``get_image_features`` on the pixels and counts the feature vectors.
:func:`with_image_placeholders` then puts that many image tokens before each prompt's text.
"""

from __future__ import annotations

from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.workloads import feature_tensors
from hwaccel_pipeline_vision.config_tree import all_configs

IMAGE_TOKEN_KEYS = ("image_token_id", "image_token_index")


def image_token(config: Any) -> int:
    """The image placeholder id the config (or a sub-config) names."""
    for current in all_configs(config):
        for key in IMAGE_TOKEN_KEYS:
            value = getattr(current, key, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    raise HwaccelError(f"{config.model_type!r}: the config names no image token")


def special_tokens(config: Any) -> set[int]:
    """Every token id the config or a sub-config names (``*_token_id``, ``*_token_index``)."""
    found: set[int] = set()
    for current in all_configs(config):
        for key, value in vars(current).items():
            if key.endswith(("token_id", "token_index")):
                values = value if isinstance(value, (list, tuple)) else [value]
                found.update(v for v in values if isinstance(v, int)
                             and not isinstance(v, bool))
    return found


def features_per_image(method: Any, pixels: Any) -> int:
    """How many feature vectors the image encoder ``method`` yields per image of ``pixels``."""
    import torch

    images = int(pixels.shape[0])
    with torch.inference_mode():
        output = method(pixel_values=pixels)
    total = sum(int(t.numel() // t.shape[-1]) for t in feature_tensors(output) if t.dim())
    if total == 0 or total % images:
        raise HwaccelError(f"get_image_features yielded {total} feature vectors for "
                           f"{images} images of one size")
    return total // images


def with_image_placeholders(workload: Any, texts: dict[str, Any], images: dict[str, Any]
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The prompts with the image's placeholders in front of their text, and the images in
    the layout the model's image encoder reads (see the module).

    Encoders that take a ``pixel_attention_mask`` (Idefics3-style towers) read a list of
    images per example, ``(batch, images, C, H, W)``: each example gets a list of one. The
    model counted on is the workload's own (:meth:`load_model`): a meta-device skeleton
    cannot count where the encoder drops padding images by their values.
    """
    import inspect

    import torch

    model = workload.load_model()
    method = workload.image_features_method(model)
    if method is None:
        raise HwaccelError(f"{type(model).__name__} has no get_image_features to count the "
                           "placeholders of its images by")
    pixels = images[workload.pixel_key]
    if "pixel_attention_mask" in inspect.signature(method).parameters and pixels.dim() == 4:
        images = {**images, workload.pixel_key: pixels.unsqueeze(1)}
    count = features_per_image(method, images[workload.pixel_key])
    ids = texts["input_ids"]
    placeholders = torch.full((ids.shape[0], count), image_token(workload.config),
                              dtype=ids.dtype)
    mask = texts.get("attention_mask", torch.ones_like(ids))
    prompts = {"input_ids": torch.cat([placeholders, ids], dim=1),
               "attention_mask": torch.cat([torch.ones_like(placeholders), mask], dim=1)}
    return prompts, images
