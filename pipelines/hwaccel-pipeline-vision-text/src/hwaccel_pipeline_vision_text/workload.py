"""The vision-text workload: load an image-text model, build images and text prompts, run it.

The model class is the one the installed transformers' auto-model table of the subfamily's
task lists for the model type (``MODEL_FOR_<TASK>_MAPPING_NAMES``, see
:data:`hwaccel_pipeline_vision_text.SUBFAMILIES`); a real checkpoint keeps its own
architecture when that table lists it. Real checkpoints load from their folder in fp32 with
``trust_remote_code=False`` and nothing fetched remotely; prompts go through the folder's
tokenizer and images through its image processor when the folder ships them. ``tiny:``
models are built from their tiny config from a fixed seed, with seeded token ids inside the
text config's vocabulary and images sized from the vision config.
"""

from __future__ import annotations

import inspect
import math
from functools import cached_property
from typing import Any

from hwaccel.models import TINY_SEED
from hwaccel.workloads import TransformersWorkload
from hwaccel_pipeline_vision_text import task_of

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
PIXEL_LEVELS = 256  # images are 8-bit, as decoded from files
# Images without a processor are scaled to [-1, 1], as CLIP/SigLIP-style processors roughly do.
NORMALIZE_MEAN = 0.5
NORMALIZE_STD = 0.5
BOX_COORDINATES = 4  # (center x, center y, width, height) as fractions of the image
FIRST_ORDINARY_TOKEN = 4  # seeded ids skip the low ids most vocabularies reserve
PROCESSOR_FILE = "preprocessor_config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


def class_names(task: str, model_type: str) -> tuple[str, ...]:
    """The class names ``task``'s auto table lists for ``model_type`` (first is the default)."""
    from transformers.models.auto import modeling_auto

    table = getattr(modeling_auto, f"MODEL_FOR_{task}_MAPPING_NAMES", None) or {}
    value = table.get(model_type, ())
    return (value,) if isinstance(value, str) else tuple(value)


def seeded_images(count: int, height: int, width: int, channels: int) -> Any:
    """Deterministic 8-bit images as a uint8 tensor ``(count, height, width, channels)``."""
    import torch

    generator = torch.Generator().manual_seed(TINY_SEED)
    return torch.randint(0, PIXEL_LEVELS, (count, height, width, channels),
                         generator=generator, dtype=torch.uint8)


def _int(value: Any) -> int | None:
    """``value`` when it is a plain int, else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class VisionTextWorkload(TransformersWorkload):
    """Workload of the ``vision-text`` pipeline (see :class:`hwaccel.workloads.Workload`)."""

    @property
    def subfamily(self) -> str:
        """The classification's subfamily (``dual_encoder`` when none is set)."""
        return self.classification.subfamily or "dual_encoder"

    @property
    def detector(self) -> bool:
        """True for open-vocabulary detectors (text queries scored per image region)."""
        return self.subfamily == "open_vocabulary_detector"

    @cached_property
    def text_config(self) -> Any:
        """The text tower's config."""
        return getattr(self.config, "text_config", None) or self.config.get_text_config()

    @cached_property
    def vision_config(self) -> Any:
        """The image tower's config."""
        return getattr(self.config, "vision_config", None) or self.config

    @cached_property
    def model_class(self) -> Any:
        """The concrete model class of the subfamily's task for this model type."""
        import transformers

        from hwaccel.errors import HwaccelError

        task = task_of(self.subfamily)
        names = class_names(task, str(self.config.model_type))
        if not names:
            raise HwaccelError(f"model type {self.config.model_type!r} has no "
                               f"{task} model class")
        own = [name for name in self.ref.architectures if name in names]
        return getattr(transformers, (own or list(names))[0])

    @cached_property
    def forward_parameters(self) -> frozenset[str]:
        """The argument names the model class's ``forward`` accepts."""
        return frozenset(inspect.signature(self.model_class.forward).parameters)

    @cached_property
    def tokenizer(self) -> Any | None:
        """The checkpoint's tokenizer when its folder ships one, else ``None``."""
        return self.folder_preprocessor("AutoTokenizer", _TOKENIZER_FILES)

    @cached_property
    def image_processor(self) -> Any | None:
        """The checkpoint's image processor when its folder ships one, else ``None``."""
        return self.folder_preprocessor("AutoImageProcessor", (PROCESSOR_FILE,))

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

    def num_texts(self, batch_size: int) -> int:
        """Prompts per batch: one per image for dual encoders, some queries per image else."""
        return batch_size * QUERIES_PER_IMAGE if self.detector else batch_size

    def prepare(self) -> None:
        """Import torch and the model class and read the configs (not part of load time)."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.tokenizer, self.image_processor

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """``batch_size`` images and their prompts, padded to ``seq_len`` tokens.

        ``seq_len`` is capped at the text tower's ``max_position_embeddings``.
        """
        limit = _int(getattr(self.text_config, "max_position_embeddings", None))
        length = min(seq_len, limit) if limit else seq_len
        inputs = {**self._texts(self.num_texts(batch_size), length),
                  **self._images(batch_size)}
        return {name: value for name, value in inputs.items()
                if name in self.forward_parameters}

    def _texts(self, count: int, length: int) -> dict[str, Any]:
        """Tokenized prompts, or seeded ids that end in the end-of-text token."""
        import torch

        if self.tokenizer is not None:
            texts = [PROMPTS[i % len(PROMPTS)] for i in range(count)]
            encoded = self.tokenizer(texts, padding="max_length", truncation=True,
                                     max_length=length, return_tensors="pt")
            return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        vocab = int(self.text_config.vocab_size)
        generator = torch.Generator().manual_seed(TINY_SEED)
        ids = torch.randint(min(FIRST_ORDINARY_TOKEN, vocab - 1), vocab, (count, length),
                            generator=generator)
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
        """Pixel values of ``count`` deterministic images, processed like the checkpoint's."""
        import torch

        grid = self.patch_grid
        patch = _int(getattr(self.vision_config, "patch_size", None))
        height, width = (grid * patch, grid * patch) if grid and patch else self.image_size
        images = seeded_images(count, height, width, self.num_channels)
        if self.image_processor is not None:
            from PIL import Image

            pil = [Image.fromarray(image) for image in images.numpy()]
            return dict(self.image_processor(pil, return_tensors="pt"))
        pixels = images.float() / (PIXEL_LEVELS - 1)
        pixels = ((pixels - NORMALIZE_MEAN) / NORMALIZE_STD).movedim(-1, -3)  # channels first
        if not (grid and patch):
            return {"pixel_values": pixels.contiguous()}
        # (count, C, H, W) -> (count, patches, patch * patch * C), row-major patch order
        cut = pixels.reshape(count, self.num_channels, grid, patch, grid, patch)
        cut = cut.permute(0, 2, 4, 3, 5, 1).reshape(count, grid * grid, -1)
        return {"pixel_values": cut.contiguous(),
                "pixel_attention_mask": torch.ones(count, grid * grid, dtype=torch.long),
                "spatial_shapes": torch.tensor([[grid, grid]] * count)}

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass; returns the tensor outputs by name."""
        import torch

        with torch.inference_mode():
            outputs = model(**inputs)
        return {name: value for name, value in outputs.items() if torch.is_tensor(value)}

    def embedding_dims(self) -> tuple[int, int]:
        """(text, image) embedding widths: the shared ``projection_dim`` when there is one.

        SigLIP-style models have none: the text head projects to the text config's
        ``projection_size`` and the image embedding is the vision tower's pooled width.
        """
        shared = _int(getattr(self.config, "projection_dim", None))
        if shared:
            return shared, shared
        text = (_int(getattr(self.text_config, "projection_size", None))
                or int(self.text_config.hidden_size))
        return text, int(self.vision_config.hidden_size)

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the configs imply.

        Dual encoders: ``logits_per_image (images, texts)``, ``logits_per_text (texts,
        images)``, ``text_embeds (texts, dim)`` and ``image_embeds (images, dim)``.
        Open-vocabulary detectors: ``logits (images, patches, queries)`` and ``pred_boxes
        (images, patches, 4)``, one prediction per ``patch_size`` patch of the image.
        """
        images = int(inputs["pixel_values"].shape[0])
        texts = int(inputs["input_ids"].shape[0])
        if self.detector:
            patch = _int(getattr(self.vision_config, "patch_size", None))
            if not patch:
                return {}
            height, width = (int(s) for s in inputs["pixel_values"].shape[-2:])
            patches = (height // patch) * (width // patch)
            return {"logits": (images, patches, texts // images),
                    "pred_boxes": (images, patches, BOX_COORDINATES)}
        if self.subfamily != "dual_encoder":
            return {}
        text_dim, image_dim = self.embedding_dims()
        return {"logits_per_image": (images, texts), "logits_per_text": (texts, images),
                "text_embeds": (texts, text_dim), "image_embeds": (images, image_dim)}
