"""The multimodal workload: an image plus a text prompt into a generative vision-language model.

Inputs, per row of the batch, from :data:`TINY_SEED`:

* the image: a deterministic RGB picture (colour gradients plus seeded noise, a different one
  per row, :func:`image_array`) of the vision config's ``image_size``;
* with a processor in the model's folder (real checkpoints): the folder's ``AutoProcessor``
  turns the images and a prompt (the processor's chat template with one image and
  :data:`TEXT` cut to ``seq_len`` words, else ``<image token> + text``) into
  ``input_ids``, ``attention_mask`` and ``pixel_values``, so it also decides how many image
  tokens the prompt holds;
* without one (``tiny:`` models): ``pixel_values`` of shape ``(batch, num_channels,
  image_size, image_size)`` (the image scaled to [-1, 1]) and ``input_ids`` that are the
  config's image token repeated exactly as many times as the vision tower yields image
  features (:meth:`MultimodalWorkload.image_token_count`), then the BOS token and seeded
  text ids, ``seq_len`` text tokens in all.

``forward`` returns the next-token ``logits`` of shape ``(batch, prompt length, text vocab)``.
Real checkpoints load from their folder with the class their config names, in fp32, with
``trust_remote_code=False``; ``tiny:`` models are built from the tiny config (with the fixes of
:func:`fix_tiny_config`) from a fixed seed.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.models import TINY_SEED
from hwaccel.workloads import TransformersWorkload
from hwaccel_pipeline_multimodal import GENERATION, SUBFAMILY_TASKS

TEXT = ("Describe this picture in one sentence and tell me which hardware should run this "
        "model: the quick brown fox jumps over the lazy dog while hwaccel measures instead "
        "of guessing")
# vision towers whose embeddings prepend a class token to the patch tokens (LLaVA's
# "default" feature-select strategy drops it, "full" keeps it)
CLASS_TOKEN_TOWERS = frozenset({"clip_vision_model", "vit", "dinov2"})
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


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


def _size(value: Any) -> tuple[int, int]:
    """``(height, width)`` of a config size that is an int, a pair or a dict."""
    if isinstance(value, dict):
        return int(value.get("height", value.get("shortest_edge"))), int(
            value.get("width", value.get("shortest_edge")))
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


class MultimodalWorkload(TransformersWorkload):
    """Workload of the ``multimodal`` pipeline (see :class:`hwaccel.workloads.Workload`)."""

    @cached_property
    def config(self) -> Any:
        """The model's transformers config (tiny configs shrunk)."""
        if self.classification.subfamily not in (None, GENERATION):
            raise HwaccelError(f"the multimodal workload runs {GENERATION} models; "
                               f"{self.ref.spec!r} is {self.classification.subfamily}")
        return TransformersWorkload.config.func(self)

    @cached_property
    def text_config(self) -> Any:
        """The config of the language model (vocabulary, width, special tokens)."""
        return self.config.get_text_config()

    @cached_property
    def vision_config(self) -> Any:
        """The config of the vision tower."""
        vision = getattr(self.config, "vision_config", None)
        if vision is None:
            raise HwaccelError(f"{self.config.model_type!r} has no vision_config")
        return vision

    @cached_property
    def model_class(self) -> Any:
        """The concrete class: the config's architecture, else the subfamily's task's."""
        import transformers
        from transformers.models.auto import modeling_auto

        own = self.architecture_class()
        if own is not None:
            return own
        for task in dict(SUBFAMILY_TASKS)[GENERATION]:
            table = getattr(modeling_auto, f"MODEL_FOR_{task}_MAPPING_NAMES", {})
            name = table.get(self.config.model_type)
            if isinstance(name, (list, tuple)):
                name = name[0] if name else None
            if name and getattr(transformers, name, None) is not None:
                return getattr(transformers, name)
        raise HwaccelError(f"no transformers image-text-to-text class for "
                           f"{self.config.model_type!r}")

    @cached_property
    def processor(self) -> Any | None:
        """The folder's processor (image processor + tokenizer), else ``None``."""
        return self.folder_preprocessor("AutoProcessor", _PROCESSOR_FILES)

    @property
    def image_token_id(self) -> int:
        """The id of the placeholder token that image features replace."""
        for scope in (self.config, self.text_config):
            for key in ("image_token_id", "image_token_index"):
                value = getattr(scope, key, None)
                if isinstance(value, int) and value >= 0:
                    return value
        raise HwaccelError(f"{self.config.model_type!r}: the config names no image token")

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the images: the vision config's, else the image processor's
        crop or resize size (towers with dynamic resolution, such as Qwen2-VL's)."""
        value = getattr(self.vision_config, "image_size", None)
        if value is None and self.processor is not None:
            images = getattr(self.processor, "image_processor", None)
            value = getattr(images, "crop_size", None) or getattr(images, "size", None)
            if isinstance(value, dict) and not {"height", "shortest_edge"} & set(value):
                value = None
        if value is None:
            raise HwaccelError(f"{self.config.model_type!r}: neither the vision config nor an "
                               "image processor gives an image size")
        return _size(value)

    def image_token_count(self) -> int:
        """How many image features the vision tower yields for one image, from the config.

        A Q-Former or resampler yields its ``num_query_tokens``; a pooled tower its
        ``mm_tokens_per_image``; otherwise one feature per patch,
        ``(height // patch_size) * (width // patch_size)``, plus the class token of a tower
        that has one, minus one when ``vision_feature_select_strategy`` is ``default``
        (LLaVA's: drop the first token).
        """
        for key in ("num_query_tokens", "mm_tokens_per_image"):
            value = getattr(self.config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        height, width = self.image_size
        patch = _size(self.vision_config.patch_size)
        count = (height // patch[0]) * (width // patch[1])
        if self.vision_config.model_type in CLASS_TOKEN_TOWERS:
            count += 1
        if getattr(self.config, "vision_feature_select_strategy", None) == "default":
            count -= 1
        return count

    def prepare(self) -> None:
        """Import torch and the model class, read the config and the processor."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.processor

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Images and prompts for ``batch_size`` rows (see the module docstring)."""
        if self.processor is not None:
            return self._processor_inputs(batch_size, seq_len)
        return self._config_inputs(batch_size, seq_len)

    def _special_ids(self) -> set[int]:
        ids = set()
        for scope in (self.config, self.text_config):
            for key, value in vars(scope).items():
                if key.endswith(("token_id", "token_index")):
                    values = value if isinstance(value, (list, tuple)) else [value]
                    ids.update(v for v in values if isinstance(v, int))
        return ids

    def _config_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Inputs sized from the config alone (``tiny:`` models)."""
        import numpy as np
        import torch

        vocab = int(self.text_config.vocab_size)
        special = self._special_ids()
        allowed = torch.tensor([i for i in range(vocab) if i not in special])
        generator = torch.Generator().manual_seed(TINY_SEED)
        text = allowed[torch.randint(len(allowed), (batch_size, max(seq_len, 1)),
                                     generator=generator)]
        bos = getattr(self.text_config, "bos_token_id", None)
        if isinstance(bos, int) and 0 <= bos < vocab:
            text[:, 0] = bos
        image = torch.full((batch_size, self.image_token_count()), self.image_token_id)
        input_ids = torch.cat([image, text], dim=1)
        height, width = self.image_size
        channels = int(getattr(self.vision_config, "num_channels", 3))
        pictures = np.stack([image_array(height, width, i) for i in range(batch_size)])
        pixels = torch.from_numpy(pictures).permute(0, 3, 1, 2)[:, :channels].float()
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                "pixel_values": pixels / 127.5 - 1.0}

    def prompt(self, seq_len: int) -> str:
        """The text prompt with one image: the chat template's, else image token + text."""
        words = TEXT.split()
        text = " ".join(words[i % len(words)] for i in range(max(seq_len, 1)))
        processor = self.processor
        if getattr(processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": text}]}]
            return processor.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False)
        token = getattr(processor, "image_token", None)
        return f"{token}\n{text}" if token else text

    def _processor_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Inputs made by the folder's processor (real checkpoints)."""
        from PIL import Image

        height, width = self.image_size
        images = [Image.fromarray(image_array(height, width, i)) for i in range(batch_size)]
        encoded = self.processor(images=images, text=[self.prompt(seq_len)] * batch_size,
                                 return_tensors="pt", padding=True)
        return dict(encoded.items())

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass without a KV cache; returns the next-token ``logits``."""
        import torch

        with torch.inference_mode():
            outputs = model(**inputs, use_cache=False)
        return {"logits": outputs.logits}

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``logits``: (batch, prompt length, the text config's vocabulary size)."""
        batch, seq = inputs["input_ids"].shape
        return {"logits": (int(batch), int(seq), int(self.text_config.vocab_size))}

    def generate(self, model: Any, inputs: dict[str, Any], new_tokens: int) -> Any:
        """Greedy generation of exactly ``new_tokens`` tokens per row after the prompt."""
        import torch

        options = {}
        for key in ("pad_token_id", "eos_token_id"):
            value = getattr(self.text_config, key, None)
            if isinstance(value, int):
                options["pad_token_id"] = value
                break
        with torch.inference_mode():
            return model.generate(**inputs, max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, **options)

    def generated_length(self, inputs: dict[str, Any], new_tokens: int) -> int:
        """The sequence length :meth:`generate` returns: the prompt, then the new tokens."""
        return int(inputs["input_ids"].shape[1]) + new_tokens
