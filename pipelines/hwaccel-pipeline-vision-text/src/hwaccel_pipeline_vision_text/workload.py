"""The vision-text workload: load an image-text model, build images and text prompts, run it.

The model class is the one the installed transformers' auto-model table of the subfamily's
task lists for the model type (``MODEL_FOR_<TASK>_MAPPING_NAMES``, see
:data:`hwaccel_pipeline_vision_text.SUBFAMILIES`); a real checkpoint keeps its own
architecture when that table lists it. Real checkpoints load from their folder in fp32 with
``trust_remote_code=False`` and nothing fetched remotely; prompts go through the folder's
tokenizer and images through its image processor when the folder ships them. ``tiny:``
models are built from their tiny config from a fixed seed (with the vision pipeline's
backbone rules and :mod:`hwaccel_pipeline_vision_text.tiny_rules`), with seeded token ids
inside the text config's vocabulary and images sized from the vision config, prepared by
the type's image processor class where this machine can build it
(:mod:`hwaccel_pipeline_vision.images`).

The media is an image, or a clip of frames for video-text models (``pixel_values_videos``).
Open-vocabulary detectors get several text queries per image: one prompt per query (OWL-ViT),
or one prompt per image that lists them, for detectors whose config bounds the text of an
image (``max_text_len``: Grounding DINO). Document retrievers (ColPali) read the page as
image placeholder tokens in the prompt, one per feature the model's image encoder yields
(:mod:`hwaccel_pipeline_vision_text.placeholders`).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import TransformersWorkload
from hwaccel_pipeline_vision.backbones import tiny_config_with_stages
from hwaccel_pipeline_vision.images import (
    Layout,
    class_processor,
    image_processor_class,
    pil_batch,
    scaled_pixels,
    seeded_images,
)
from hwaccel_pipeline_vision_text import task_of
from hwaccel_pipeline_vision_text.tiny_rules import (
    scaled_width_links,
    shuffled_patch_grid,
    text_input_switches,
)

PROMPTS = (
    "a photo of a cat",
    "a photo of a dog",
    "a diagram of a circuit board",
    "a page of printed text",
)
# Open-vocabulary detectors look for several text queries in every image.
QUERIES_PER_IMAGE = 2
# Image side for vision configs that state no ``image_size``: ImageNet's 224 pixels.
DEFAULT_IMAGE_SIZE = 224
RGB_CHANNELS = 3
# Frames per clip for video-text models whose config names no clip length.
DEFAULT_FRAMES = 4
BOX_COORDINATES = 4  # (center x, center y, width, height) as fractions of the image
FIRST_ORDINARY_TOKEN = 4  # seeded ids skip the low ids most vocabularies reserve
PROCESSOR_FILE = "preprocessor_config.json"
VIDEO_KEY = "pixel_values_videos"
TEXT_PER_IMAGE_KEY = "max_text_len"  # detectors that read one prompt per image
IDS_SUFFIX = "_input_ids"
# Prompt groups (``<group>_input_ids``) whose prompts are the text queries, one per query.
QUERY_GROUPS = ("classes",)
# A dual encoder listed only as a base model (X-CLIP) runs its base class, which is the
# contrastive model itself.
BASE_TASK = "BASE"
# A model class with this method embeds clips: its pixels are (batch, frames, C, H, W).
VIDEO_FEATURES = "get_video_features"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


def class_names(task: str, model_type: str) -> tuple[str, ...]:
    """The class names ``task``'s auto table lists for ``model_type`` (first is the default;
    task ``BASE`` is the base-model table)."""
    from transformers.models.auto import modeling_auto

    name = "MODEL_MAPPING_NAMES" if task == BASE_TASK else f"MODEL_FOR_{task}_MAPPING_NAMES"
    table = getattr(modeling_auto, name, None) or {}
    value = table.get(model_type, ())
    return (value,) if isinstance(value, str) else tuple(value)


def _int(value: Any) -> int | None:
    """``value`` when it is a plain int, else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class VisionTextWorkload(TransformersWorkload):
    """Workload of the ``vision-text`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    @property
    def subfamily(self) -> str:
        """The classification's subfamily (``dual_encoder`` when none is set)."""
        return self.classification.subfamily or "dual_encoder"

    @property
    def detector(self) -> bool:
        """True for open-vocabulary detectors (text queries scored per image region)."""
        return self.subfamily == "open_vocabulary_detector"

    @property
    def retriever(self) -> bool:
        """True for document retrievers (the page read as image placeholders in the prompt)."""
        return self.subfamily == "document_retriever"

    @cached_property
    def model_type(self) -> str:
        """The transformers ``model_type`` (the reference's, else its config's)."""
        return self.ref.model_type or str(self.config.model_type)

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """The core's tiny config with the vision pipeline's backbone rules and this
        pipeline's :mod:`~hwaccel_pipeline_vision_text.tiny_rules`.

        A timm backbone stays (OmDet-Turbo's channels-last Swin has no transformers
        stand-in): it needs ``pip install timm``.
        """
        return tiny_config_with_stages(self.model_type, keep, text_input_switches,
                                       scaled_width_links, shuffled_patch_grid)

    @cached_property
    def text_config(self) -> Any:
        """The text tower's config."""
        return getattr(self.config, "text_config", None) or self.config.get_text_config()

    @cached_property
    def vision_config(self) -> Any:
        """The image tower's config: ``vision_config`` of the config or of its model's
        (``vlm_config``), else the config itself."""
        for owner in (self.config, getattr(self.config, "vlm_config", None)):
            vision = getattr(owner, "vision_config", None)
            if vision is not None:
                return vision
        return self.config

    @cached_property
    def model_class(self) -> Any:
        """The concrete model class of the subfamily's task for this model type."""
        import transformers

        from hwaccel.errors import HwaccelError

        task = task_of(self.subfamily)
        names = class_names(task, self.model_type)
        if not names and self.subfamily == "dual_encoder":
            names = class_names(BASE_TASK, self.model_type)
        if not names:
            raise HwaccelError(f"model type {self.model_type!r} has no {task} model class")
        own = [name for name in self.ref.architectures if name in names]
        return getattr(transformers, (own or list(names))[0])

    @cached_property
    def tokenizer(self) -> Any | None:
        """The checkpoint's tokenizer when its folder ships one, else ``None``."""
        return self.folder_preprocessor("AutoTokenizer", _TOKENIZER_FILES)

    @cached_property
    def image_processor(self) -> Any | None:
        """The checkpoint's image processor when its folder ships one, else ``None``."""
        return self.folder_preprocessor("AutoImageProcessor", (PROCESSOR_FILE,))

    @property
    def media(self) -> str:
        """``video`` for models that take clips (``pixel_values_videos``, or a model class
        that embeds videos, :data:`VIDEO_FEATURES`), else ``image``."""
        if VIDEO_KEY in self.forward_parameters or hasattr(self.model_class, VIDEO_FEATURES):
            return "video"
        return "image"

    @property
    def pixel_key(self) -> str:
        """The forward argument that takes the pixels (``pixel_values_videos`` where the
        forward has it, else ``pixel_values``)."""
        return VIDEO_KEY if VIDEO_KEY in self.forward_parameters else "pixel_values"

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) from the vision config's ``image_size``, else the default."""
        size = getattr(self.vision_config, "image_size", None)
        if _int(size):
            return size, size
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return int(size[0]), int(size[1])
        return DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE

    @property
    def num_channels(self) -> int:
        """Colour channels from the vision config's ``num_channels``, else RGB."""
        return _int(getattr(self.vision_config, "num_channels", None)) or RGB_CHANNELS

    @property
    def num_frames(self) -> int | None:
        """Frames per clip of video-text models (the vision config's ``num_frames``, else
        :data:`DEFAULT_FRAMES`), else ``None``."""
        if self.media != "video":
            return None
        return _int(getattr(self.vision_config, "num_frames", None)) or DEFAULT_FRAMES

    @property
    def text_per_image(self) -> bool:
        """True for detectors that read one prompt per image listing its queries (their config
        bounds the text of an image, ``max_text_len``), False for one prompt per query."""
        return _int(getattr(self.config, TEXT_PER_IMAGE_KEY, None)) is not None

    def num_texts(self, batch_size: int) -> int:
        """Prompts per batch: one per query for detectors that take queries apart, else one
        per image."""
        if self.detector and not self.text_per_image:
            return batch_size * QUERIES_PER_IMAGE
        return batch_size

    def prepare(self) -> None:
        """Import torch and the model class and read the configs (not part of load time)."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.tokenizer, self.image_processor

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """``batch_size`` images (clips) and their prompts, padded to ``seq_len`` tokens.

        ``seq_len`` is capped at the text tower's ``max_position_embeddings``. Detectors that
        read one prompt per image take ``max_text_len`` tokens instead: they score every
        token position up to that bound, positions past the prompt with minus infinity.
        Sets :attr:`input_source`: the images' (:meth:`_images`) when the folder's tokenizer
        made the prompts, else ``synthetic`` (seeded token ids).
        """
        limit = _int(getattr(self.text_config, "max_position_embeddings", None))
        if self.detector and self.text_per_image:
            seq_len = int(getattr(self.config, TEXT_PER_IMAGE_KEY))
        length = min(seq_len, limit) if limit else seq_len
        images = self._images(batch_size)
        if self.text_groups:
            texts = self._grouped_texts(batch_size, length)
        else:
            texts = self._texts(self.num_texts(batch_size), length)
        if self.tokenizer is None:
            self.input_source = "synthetic"
        if self.retriever:
            from hwaccel_pipeline_vision_text.placeholders import with_image_placeholders

            texts, images = with_image_placeholders(self, texts, images)
        inputs = {**texts, **images}
        return {name: value for name, value in inputs.items()
                if name in self.forward_parameters}

    @property
    def text_groups(self) -> list[str]:
        """The prompt groups of models that take several kinds of prompt instead of one
        ``input_ids`` (OmDet-Turbo: ``classes_input_ids`` and ``tasks_input_ids``)."""
        if "input_ids" in self.forward_parameters:
            return []
        return sorted(name[:-len(IDS_SUFFIX)] for name in self.forward_parameters
                      if name.endswith(IDS_SUFFIX) and len(name) > len(IDS_SUFFIX))

    def _grouped_texts(self, batch_size: int, length: int) -> dict[str, Any]:
        """Prompts of every group: one per query for the query group (:data:`QUERY_GROUPS`,
        with ``<group>_structure``, the queries of each image), one per image for the others
        (a task description)."""
        import torch

        inputs: dict[str, Any] = {}
        for group in self.text_groups:
            queries = group in QUERY_GROUPS
            texts = self._texts(batch_size * (QUERIES_PER_IMAGE if queries else 1), length)
            inputs.update({f"{group}_{name}": value for name, value in texts.items()})
            if queries:
                inputs[f"{group}_structure"] = torch.full((batch_size,), QUERIES_PER_IMAGE)
        return inputs

    def _texts(self, count: int, length: int) -> dict[str, Any]:
        """Tokenized prompts, or seeded ids that end in the end-of-text token and are no
        other special token of the config."""
        import torch

        from hwaccel_pipeline_vision_text.placeholders import special_tokens

        if self.tokenizer is not None:
            texts = [PROMPTS[i % len(PROMPTS)] for i in range(count)]
            encoded = self.tokenizer(texts, padding="max_length", truncation=True,
                                     max_length=length, return_tensors="pt")
            return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        vocab = int(self.text_config.vocab_size)
        special = special_tokens(self.config)
        ordinary = torch.tensor([i for i in range(min(FIRST_ORDINARY_TOKEN, vocab - 1), vocab)
                                 if i not in special])
        generator = torch.Generator().manual_seed(TINY_SEED)
        ids = ordinary[torch.randint(len(ordinary), (count, length), generator=generator)]
        eos = _int(getattr(self.text_config, "eos_token_id", None))
        if eos is not None and 0 <= eos < vocab:
            ids[:, -1] = eos  # CLIP-style text towers pool at the end-of-text token
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    @property
    def patch_grid(self) -> int | None:
        """Patches per side for native-resolution (NaFlex, SigLIP2-style) vision towers.

        Such towers take pre-cut patches, a patch mask and each image's patch grid instead
        of a fixed-size image; their vision config gives ``num_patches`` and no image size.
        """
        patches = _int(getattr(self.vision_config, "num_patches", None))
        if (patches is None or getattr(self.vision_config, "image_size", None) is not None
                or "spatial_shapes" not in self.forward_parameters):
            return None
        return math.isqrt(patches)

    def _images(self, count: int) -> dict[str, Any]:
        """Pixel values of ``count`` deterministic images (clips), through the folder's image
        processor, else the type's image processor class, else scaled here."""
        import torch

        grid = self.patch_grid
        patch = _int(getattr(self.vision_config, "patch_size", None))
        height, width = (grid * patch, grid * patch) if grid and patch else self.image_size
        layout = Layout(height, width, self.num_channels, self.num_frames)
        images = seeded_images(count, layout)
        processor, self.input_source = self.image_processor, "processor"
        cls = image_processor_class(self.model_type)
        if processor is None and not grid and cls is not None:
            processor, self.input_source = class_processor(cls, layout), "processor-class"
        if processor is not None:
            encoded = dict(processor(pil_batch(images, layout.frames is not None),
                                     return_tensors="pt"))
            if self.pixel_key not in encoded and "pixel_values" in encoded:
                encoded[self.pixel_key] = encoded.pop("pixel_values")
            return self._as_clips(self._tensors(encoded), count, layout.frames)
        self.input_source = "synthetic"
        pixels = scaled_pixels(images)
        if not (grid and patch):
            return {self.pixel_key: pixels}
        # (count, C, H, W) -> (count, patches, patch * patch * C), row-major patch order
        cut = pixels.reshape(count, self.num_channels, grid, patch, grid, patch)
        cut = cut.permute(0, 2, 4, 3, 5, 1).reshape(count, grid * grid, -1)
        return {"pixel_values": cut.contiguous(),
                "pixel_attention_mask": torch.ones(count, grid * grid, dtype=torch.long),
                "spatial_shapes": torch.tensor([[grid, grid]] * count)}

    def _as_clips(self, tensors: dict[str, Any], count: int,
                  frames: int | None) -> dict[str, Any]:
        """Clips as (count, frames, C, H, W): an image processor (X-CLIP ships CLIP's) gives
        the frames of every clip as one flat batch of images."""
        pixels = tensors.get(self.pixel_key)
        if frames and pixels is not None and pixels.dim() == 4 \
                and pixels.shape[0] == count * frames:
            tensors[self.pixel_key] = pixels.reshape(count, frames, *pixels.shape[1:])
        return tensors

    def _tensors(self, encoded: dict[str, Any]) -> dict[str, Any]:
        """The tensors of a processor's output."""
        return {name: value for name, value in encoded.items() if hasattr(value, "shape")}

    @staticmethod
    def image_features_method(owner: Any) -> Any | None:
        """``get_image_features`` of a model (class or instance), its base model's, or its
        wrapped vision-language model's; else ``None``."""
        for candidate in (owner, getattr(owner, "model", None), getattr(owner, "vlm", None)):
            method = getattr(candidate, "get_image_features", None) if candidate else None
            if callable(method):
                return method
        return None

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass; returns the tensor outputs by name."""
        import torch

        with torch.inference_mode():
            outputs = model(**inputs)
        return {name: value for name, value in outputs.items() if torch.is_tensor(value)}

    def embedding_dims(self) -> tuple[int, int]:
        """(text, image) embedding widths: the shared ``projection_dim`` (a Q-Former's
        ``image_text_hidden_size``) when there is one.

        SigLIP-style models have none: the text head projects to the text config's
        ``projection_size`` and the image embedding is the vision tower's pooled width.
        """
        shared = (_int(getattr(self.config, "projection_dim", None))
                  or _int(getattr(self.config, "image_text_hidden_size", None)))
        if shared:
            return shared, shared
        text = (_int(getattr(self.text_config, "projection_size", None))
                or int(self.text_config.hidden_size))
        return text, int(self.vision_config.hidden_size)

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the configs imply.

        Dual encoders: ``logits_per_<media> (media, texts)``, ``logits_per_text (texts,
        media)``, ``text_embeds (texts, dim)`` and ``<media>_embeds (media, dim)``, the
        media being images or videos (no ``text_embeds`` shape for videos: X-CLIP's are
        ``(videos, texts, dim)``, each text conditioned on each video); a Q-Former embeds
        each image as its
        ``num_query_tokens`` queries (``image_embeds (images, queries, dim)``).
        Open-vocabulary detectors with one prompt per query: ``logits (images, patches,
        queries)`` and ``pred_boxes (images, patches, 4)``, one prediction per
        ``patch_size`` patch of the image.
        """
        images = int(inputs[self.pixel_key].shape[0])
        if self.detector:
            patch = _int(getattr(self.vision_config, "patch_size", None))
            if not patch or self.text_per_image or self.text_groups:
                return {}
            texts = int(inputs["input_ids"].shape[0])
            height, width = (int(s) for s in inputs[self.pixel_key].shape[-2:])
            patches = (height // patch) * (width // patch)
            return {"logits": (images, patches, texts // images),
                    "pred_boxes": (images, patches, BOX_COORDINATES)}
        if self.subfamily != "dual_encoder":
            return {}
        texts = int(inputs["input_ids"].shape[0])
        text_dim, image_dim = self.embedding_dims()
        media = self.media
        queries = _int(getattr(self.config, "num_query_tokens", None))
        per_image = (queries, image_dim) if queries else (image_dim,)
        shapes = {f"logits_per_{media}": (images, texts), "logits_per_text": (texts, images),
                  "text_embeds": (texts, text_dim), f"{media}_embeds": (images, *per_image)}
        if media == "video":  # a video-text model may embed each text per video (X-CLIP's
            del shapes["text_embeds"]  # prompt generator): its text embeddings are not fixed
        return shapes
