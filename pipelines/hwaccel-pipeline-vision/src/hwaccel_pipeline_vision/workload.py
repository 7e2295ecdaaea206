"""The vision workload: load an image or video model, build images, run forward.

The model class is the one the installed transformers' auto-model table of the subfamily's
task lists for the model type (``MODEL_FOR_<TASK>_MAPPING_NAMES``, see
:data:`hwaccel_pipeline_vision.SUBFAMILIES`); a real checkpoint keeps its own architecture
when that table lists it. Real checkpoints load from their folder in fp32 with
``trust_remote_code=False`` and nothing fetched remotely; their images go through the
folder's image processor when it ships ``preprocessor_config.json``. ``tiny:`` models are
built from their tiny config from a fixed seed, with images sized from that config.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

from hwaccel.models import TINY_SEED
from hwaccel.workloads import TransformersWorkload
from hwaccel_pipeline_vision import row_tasks

# Image side for configs that state no ``image_size`` (ResNet, DETR): the 224-pixel
# resolution of ImageNet, which most vision checkpoints are trained at.
DEFAULT_IMAGE_SIZE = 224
RGB_CHANNELS = 3
BOX_COORDINATES = 4  # (center x, center y, width, height) as fractions of the image
PIXEL_LEVELS = 256  # images are 8-bit, as decoded from files
# Images without a processor are scaled to [-1, 1], as ViT-style processors do.
NORMALIZE_MEAN = 0.5
NORMALIZE_STD = 0.5
PROCESSOR_FILE = "preprocessor_config.json"
TIMM_BACKBONE = "timm_backbone"
FRAME_KEYS = ("num_frames", "frames_per_clip")


def mapping_names(task: str) -> dict[str, Any]:
    """The installed transformers' auto-model table of ``task`` (``BASE``: the base models)."""
    from transformers.models.auto import modeling_auto

    name = "MODEL_MAPPING_NAMES" if task == "BASE" else f"MODEL_FOR_{task}_MAPPING_NAMES"
    table = getattr(modeling_auto, name, None)
    return table if isinstance(table, dict) else {}


def class_names(task: str, model_type: str) -> tuple[str, ...]:
    """The class names ``task``'s auto table lists for ``model_type`` (first is the default)."""
    value = mapping_names(task).get(model_type, ())
    return (value,) if isinstance(value, str) else tuple(value)


def tiny_resnet_backbone(out_indices: Any) -> Any:
    """A tiny transformers ResNet backbone config: one basic block per stage, tiny width."""
    from transformers import ResNetConfig

    from hwaccel.tiny import TINY_HIDDEN

    stages = len(ResNetConfig().hidden_sizes)
    indices = list(out_indices) if out_indices else [stages]
    return ResNetConfig(embedding_size=TINY_HIDDEN, hidden_sizes=[TINY_HIDDEN] * stages,
                        depths=[1] * stages, layer_type="basic", out_indices=indices)


def replace_timm_backbone(config: Any) -> Any:
    """Tiny-model fix: swap a default timm backbone (DETR & co.) for a tiny ResNet one.

    The default configs of DETR-style detectors name a timm ``resnet50`` backbone, which needs
    the ``timm`` package and is not tiny. For ``tiny:`` references the backbone becomes a
    transformers ResNet (``use_timm_backbone=False``) with tiny widths and random weights,
    returning the same feature-map stages the timm one would. Real checkpoints are untouched.
    """
    backbone = getattr(config, "backbone_config", None)
    if getattr(backbone, "model_type", None) != TIMM_BACKBONE:
        return config
    config.backbone_config = tiny_resnet_backbone(getattr(backbone, "out_indices", None))
    config.use_timm_backbone = False
    config.use_pretrained_backbone = False
    return config


def seeded_images(count: int, height: int, width: int, channels: int,
                  frames: int | None = None) -> Any:
    """Deterministic 8-bit images as a uint8 tensor ``(count, [frames,] height, width, C)``."""
    import torch

    generator = torch.Generator().manual_seed(TINY_SEED)
    shape = (count, *((frames,) if frames else ()), height, width, channels)
    return torch.randint(0, PIXEL_LEVELS, shape, generator=generator, dtype=torch.uint8)


class VisionWorkload(TransformersWorkload):
    """Workload of the ``vision`` pipeline (see :class:`hwaccel.workloads.Workload`)."""

    @property
    def subfamily(self) -> str:
        """The classification's vision subfamily (``image_encoder`` when none is set)."""
        return self.classification.subfamily or "image_encoder"

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """The core's tiny config with a default timm backbone replaced by a tiny ResNet."""
        return replace_timm_backbone(super().tiny_config(keep))

    @cached_property
    def model_type(self) -> str:
        """The config's transformers ``model_type``."""
        return str(self.config.model_type)

    @cached_property
    def task(self) -> str:
        """The auto-model TASK whose class runs: the subfamily's first the model type has."""
        from hwaccel import autotables
        from hwaccel.errors import HwaccelError

        tasks = autotables.load().tasks(self.model_type)
        candidates = [t for t in row_tasks(self.subfamily) if t in tasks]
        if not candidates:
            raise HwaccelError(f"model type {self.model_type!r} has no auto-model class for "
                               f"subfamily {self.subfamily!r}")
        for task in candidates:  # a checkpoint keeps its own head when the table lists it
            if set(self.ref.architectures) & set(class_names(task, self.model_type)):
                return task
        return candidates[0]

    @cached_property
    def model_class(self) -> Any:
        """The concrete model class of :attr:`task` for this model type."""
        import transformers

        names = class_names(self.task, self.model_type)
        own = [name for name in self.ref.architectures if name in names]
        return getattr(transformers, (own or list(names))[0])

    @cached_property
    def image_processor(self) -> Any | None:
        """The checkpoint's image processor when its folder ships one, else ``None``."""
        return self.folder_preprocessor("AutoImageProcessor", (PROCESSOR_FILE,))

    def _configs(self) -> list[Any]:
        """The config, then the sub-configs that describe the image input."""
        nested = (getattr(self.config, name, None) for name in ("vision_config",
                                                                "backbone_config"))
        return [self.config, *(c for c in nested if c is not None)]

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images from the config's ``image_size``, else the default."""
        for config in self._configs():
            size = getattr(config, "image_size", None)
            if isinstance(size, int) and not isinstance(size, bool):
                return size, size
            if isinstance(size, (list, tuple)) and len(size) == 2:
                return int(size[0]), int(size[1])
        return DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE

    @property
    def num_channels(self) -> int:
        """Colour channels of the input from the config's ``num_channels``, else RGB."""
        for config in self._configs():
            channels = getattr(config, "num_channels", None)
            if isinstance(channels, int) and channels > 0:
                return channels
        return RGB_CHANNELS

    @property
    def num_frames(self) -> int | None:
        """Frames per clip of video models (the config's ``num_frames``), else None."""
        if self.subfamily != "video_classifier" and self.pixel_key != "pixel_values_videos":
            return None
        for config in self._configs():
            for name in FRAME_KEYS:
                frames = getattr(config, name, None)
                if isinstance(frames, int) and frames > 0:
                    return frames
        return None

    def prepare(self) -> None:
        """Import torch and the model class and read the config (not part of load time)."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.image_processor

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """``batch_size`` deterministic images (or clips); ``seq_len`` does not apply."""
        height, width = self.image_size
        images = seeded_images(batch_size, height, width, self.num_channels, self.num_frames)
        if self.image_processor is not None:
            return self._processed(images)
        pixels = images.float() / (PIXEL_LEVELS - 1)
        pixels = (pixels - NORMALIZE_MEAN) / NORMALIZE_STD
        return {self.pixel_key: pixels.movedim(-1, -3).contiguous()}  # channels first

    @cached_property
    def forward_parameters(self) -> frozenset[str]:
        """The argument names the model class's ``forward`` accepts."""
        return frozenset(inspect.signature(self.model_class.forward).parameters)

    @property
    def pixel_key(self) -> str:
        """The forward argument that takes the pixels (``pixel_values_videos`` for some)."""
        if "pixel_values" not in self.forward_parameters and (
                "pixel_values_videos" in self.forward_parameters):
            return "pixel_values_videos"
        return "pixel_values"

    def _processed(self, images: Any) -> dict[str, Any]:
        """Run the checkpoint's image processor on PIL versions of ``images``."""
        from PIL import Image

        arrays = images.numpy()
        if self.num_frames:
            pil = [[Image.fromarray(frame) for frame in clip] for clip in arrays]
        else:
            pil = [Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
                   for image in arrays]
        encoded = dict(self.image_processor(pil, return_tensors="pt"))
        if self.pixel_key not in encoded and "pixel_values" in encoded:
            encoded[self.pixel_key] = encoded.pop("pixel_values")
        return {name: value for name, value in encoded.items()
                if name in self.forward_parameters}

    def take(self, inputs: dict[str, Any], count: int) -> dict[str, Any]:
        """The first ``count`` images of a batch of inputs."""
        return {name: value[:count] for name, value in inputs.items()}

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass; returns the tensor outputs by name (feature maps numbered)."""
        import torch

        with torch.inference_mode():
            outputs = model(**inputs)
        named: dict[str, Any] = {}
        for name, value in outputs.items():
            if torch.is_tensor(value):
                named[name] = value
            elif isinstance(value, (list, tuple)) and value and all(
                    torch.is_tensor(v) for v in value):
                named.update({f"{name}.{i}": v for i, v in enumerate(value)})
        return named

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the config implies for the subfamily's head.

        Classifiers: ``logits (batch, num_labels)``. DETR-family set-prediction detectors
        (configs that weigh their matching loss: ``eos_coefficient`` or a focal loss):
        ``pred_boxes (batch, queries, 4)`` and ``logits (batch, queries, classes)``, where
        classes is ``num_labels + 1`` (the softmax "no object" class that
        ``eos_coefficient`` weighs) unless the config uses a sigmoid focal loss, which scores
        each label on its own. Depth estimators: ``predicted_depth (batch, height, width)``
        of the input. Other heads: none beyond the shared batch-size check.
        """
        pixels = inputs[self.pixel_key]
        batch = int(pixels.shape[0])
        if self.subfamily in ("image_classifier", "video_classifier"):
            return {"logits": (batch, int(self.config.num_labels))}
        if self.subfamily == "object_detector":
            queries = (getattr(self.config, "num_queries", None)
                       or getattr(self.config, "num_detection_tokens", None))
            softmax = getattr(self.config, "eos_coefficient", None) is not None
            focal = (getattr(self.config, "focal_alpha", None) is not None
                     or bool(getattr(self.config, "use_focal_loss", False)))
            if not isinstance(queries, int) or not (softmax or focal):
                return {}
            no_object = int(softmax and not focal)
            return {"pred_boxes": (batch, queries, BOX_COORDINATES),
                    "logits": (batch, queries, int(self.config.num_labels) + no_object)}
        if self.subfamily == "depth_estimator":
            return {"predicted_depth": (batch, *(int(s) for s in pixels.shape[-2:]))}
        return {}
