"""The vision workload: load an image or video model, build images, run forward.

The model class is the one the installed transformers' auto-model table of the subfamily's
task lists for the model type (``MODEL_FOR_<TASK>_MAPPING_NAMES``, see
:data:`hwaccel_pipeline_vision.SUBFAMILIES`); a real checkpoint keeps its own architecture
when that table lists it. Real checkpoints load from their folder in fp32 with
``trust_remote_code=False`` and nothing fetched remotely. ``tiny:`` models are built from
their tiny config from a fixed seed (:mod:`hwaccel_pipeline_vision.backbones` keeps its
backbone stage selections consistent).

Inputs follow the model's own description (:mod:`hwaccel_pipeline_vision.images`): images
sized from the config (else as the image processor sizes them), laid out as the forward
takes them (one image, a pair of images for keypoint matchers, a clip for video models),
prepared by the folder's image processor when it ships ``preprocessor_config.json``
(``input_source`` ``processor``), else by the type's image processor class
(``processor-class``), else scaled here: at the size the type's image processor class
declares when this machine cannot run it (``processor-settings``: torchvision's only
classes), else at the config's (``synthetic``). Models that read an image as a
sequence of colour-cluster ids (ImageGPT) get seeded ids, and token inputs the forward
requires beside the pixels (OneFormer's task) seeded ids of the length the config gives them.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import TransformersWorkload
from hwaccel_pipeline_vision import row_tasks
from hwaccel_pipeline_vision.backbones import select_stages, tiny_config_with_stages
from hwaccel_pipeline_vision.config_tree import all_configs
from hwaccel_pipeline_vision.images import (
    Layout,
    class_processor,
    default_size,
    image_processor_class,
    pil_batch,
    processor_defaults,
    scaled_pixels,
    seeded_images,
)

# Image side for configs that state no ``image_size`` (ResNet, DETR): the 224-pixel
# resolution of ImageNet, which most vision checkpoints are trained at.
DEFAULT_IMAGE_SIZE = 224
RGB_CHANNELS = 3
BOX_COORDINATES = 4  # (center x, center y, width, height) as fractions of the image
PROCESSOR_FILE = "preprocessor_config.json"
TIMM_BACKBONE = "timm_backbone"
FRAME_KEYS = ("num_frames", "frames_per_clip")
# Frames per clip for video models whose config names no clip length.
DEFAULT_FRAMES = 4
PAIR_TASK = "KEYPOINT_MATCHING"  # models that match the keypoints of two images
VIDEO_KEY = "pixel_values_videos"
POSITION_KEYS = ("n_positions", "max_position_embeddings")
WINDOWS_KEY = "num_windows"  # windows per side of the patch grid
MAX_HEAD_STAGES = 4  # stages a head may read, at most (feature pyramids have four levels)


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

    from hwaccel.kit.tiny import TINY_HIDDEN

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


class VisionWorkload(TransformersWorkload):
    """Workload of the ``vision`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    @property
    def subfamily(self) -> str:
        """The classification's vision subfamily (``image_encoder`` when none is set)."""
        return self.classification.subfamily or "image_encoder"

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """The core's tiny config with consistent backbone stage selections
        (:mod:`hwaccel_pipeline_vision.backbones`) and a default timm backbone replaced by a
        tiny ResNet.

        A config that selects a single stage where the model class's head refuses it (BEiT's
        segmentation head reads four) selects the fewest stages the head takes instead.
        """
        config = replace_timm_backbone(tiny_config_with_stages(self.model_type, keep))
        selection = getattr(config, "out_indices", None)
        if not (isinstance(selection, list) and len(selection) == 1
                and self._refuses_selection(config)):
            return config
        for count in range(2, MAX_HEAD_STAGES + 1):
            candidate = replace_timm_backbone(
                tiny_config_with_stages(self.model_type, keep, select_stages(count)))
            if not self._refuses_selection(candidate):
                return candidate
        return config

    def _refuses_selection(self, config: Any) -> bool:
        """True when the model class, built from ``config`` on the meta device, rejects its
        ``out_indices``; a build that fails otherwise is left to fail where the model is
        built."""
        import torch

        try:
            with torch.device("meta"):
                self.model_class(config)
        except Exception as exc:  # noqa: BLE001 - only a refused selection is of interest
            return isinstance(exc, ValueError) and "out_indices" in str(exc)
        return False

    @cached_property
    def model_type(self) -> str:
        """The transformers ``model_type`` (the reference's, else its config's)."""
        return self.ref.model_type or str(self.config.model_type)

    @cached_property
    def task(self) -> str:
        """The auto-model TASK whose class runs: the subfamily's first the model type has."""
        from hwaccel.errors import HwaccelError
        from hwaccel.kit import autotables

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
        """The config and all its sub-configs, outermost first."""
        return all_configs(self.config)

    def _first_int(self, *names: str) -> int | None:
        """The first positive int any (sub-)config gives under one of ``names``."""
        for config in self._configs():
            for name in names:
                value = getattr(config, name, None)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return None

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images: the first ``image_size`` of the config or of a
        sub-config, else the default size of the type's image processor, else
        :data:`DEFAULT_IMAGE_SIZE`; at least :meth:`smallest_side`, in multiples of
        :meth:`side_step`."""
        size = None
        for config in self._configs():
            value = getattr(config, "image_size", None)
            if isinstance(value, int) and not isinstance(value, bool):
                size = (value, value)
            elif isinstance(value, (list, tuple)) and len(value) == 2:
                size = (int(value[0]), int(value[1]))
            if size is not None:
                break
        if size is None and self.image_processor is None:
            size = default_size(processor_defaults(self.model_type))
        height, width = size or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
        least, step = self.smallest_side(), self.side_step()
        return (-(-max(height, least) // step) * step, -(-max(width, least) // step) * step)

    @cached_property
    def processor_class(self) -> type | None:
        """The type's image processor class this machine can run (see
        :func:`~hwaccel_pipeline_vision.images.image_processor_class`), else ``None``."""
        return image_processor_class(self.model_type)

    def smallest_side(self) -> int:
        """The smallest image side the model takes: models that cut each of several scaled
        copies of the image (``scaled_images_ratios``) into ``patch_size`` tiles need the
        smallest copy to hold one tile (DepthPro); others take any side."""
        ratios = getattr(self.config, "scaled_images_ratios", None)
        patch = getattr(self.config, "patch_size", None)
        if isinstance(patch, int) and isinstance(ratios, (list, tuple)) and ratios and all(
                isinstance(r, (int, float)) and r > 0 for r in ratios):
            return int(-(-patch // min(ratios)))
        return 1

    def side_step(self) -> int:
        """What an image side must be a multiple of: models that split the patch grid into
        ``num_windows`` windows per side (RF-DETR) need ``patch_size * num_windows``; others
        take any side."""
        for config in self._configs():
            windows = getattr(config, WINDOWS_KEY, None)
            patch = getattr(config, "patch_size", None)
            if isinstance(windows, int) and isinstance(patch, int) and windows > 1:
                return patch * windows
        return 1

    @property
    def num_channels(self) -> int:
        """Colour channels of the input from the config's ``num_channels``, else RGB."""
        return self._first_int("num_channels") or RGB_CHANNELS

    @property
    def num_frames(self) -> int | None:
        """Frames per clip of video models (the config's ``num_frames``, else
        :data:`DEFAULT_FRAMES`), else None."""
        if self.subfamily != "video_classifier" and self.pixel_key != VIDEO_KEY:
            return None
        return self._first_int(*FRAME_KEYS) or DEFAULT_FRAMES

    @property
    def layout(self) -> Layout:
        """How the images of one example are laid out (see :class:`Layout`)."""
        height, width = self.image_size
        return Layout(height, width, self.num_channels, self.num_frames,
                      pair=self.task == PAIR_TASK)

    def prepare(self) -> None:
        """Import torch and the model class and read the config (not part of load time)."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.image_processor

    @property
    def pixel_key(self) -> str | None:
        """The forward argument that takes the pixels (``pixel_values_videos`` for some
        video models); ``None`` for models that take an image as token ids (ImageGPT)."""
        for key in ("pixel_values", VIDEO_KEY):
            if key in self.forward_parameters:
                return key
        return None

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """``batch_size`` deterministic examples (images, pairs or clips, see the module
        docstring); ``seq_len`` does not apply. Sets :attr:`input_source`."""
        inputs = self._pixels(batch_size) if self.pixel_key else {}
        ids = self._token_inputs(batch_size, inputs)
        if ids:
            self.input_source = "synthetic"
        return {**inputs, **ids}

    def _pixels(self, batch_size: int) -> dict[str, Any]:
        """The pixel inputs of ``batch_size`` examples, through the folder's image processor,
        else the type's image processor class, else scaled here."""
        layout = self.layout
        images = seeded_images(batch_size, layout)
        processor = self.image_processor
        self.input_source = "processor"
        if processor is None and self.processor_class is not None:
            processor = class_processor(self.processor_class, layout)
            self.input_source = "processor-class"
        if processor is None:
            declared = default_size(processor_defaults(self.model_type))
            self.input_source = "processor-settings" if declared == (
                layout.height, layout.width) else "synthetic"
            return {self.pixel_key: scaled_pixels(images)}
        grouped = layout.per_example is not None
        encoded = dict(processor(pil_batch(images, grouped), return_tensors="pt"))
        if self.pixel_key not in encoded and "pixel_values" in encoded:
            encoded[self.pixel_key] = encoded.pop("pixel_values")
        return {name: value for name, value in encoded.items()
                if name in self.forward_parameters and hasattr(value, "shape")}

    def _token_inputs(self, batch_size: int, given: dict[str, Any]) -> dict[str, Any]:
        """Seeded token ids for what the forward reads as ids: the image itself when it takes
        no pixels (``input_ids`` of colour clusters, one per position), and every required
        argument ``<name>_inputs`` besides (``<name>_seq_len`` ids of the config's text
        vocabulary)."""
        import torch

        from hwaccel.errors import HwaccelError

        wanted: dict[str, int | None] = {}
        if self.pixel_key is None and "input_ids" in self.forward_parameters:
            wanted["input_ids"] = self._first_int(*POSITION_KEYS)
        signature = inspect.signature(self.model_class.forward).parameters.values()
        for parameter in signature:
            name = parameter.name
            if (parameter.default is inspect.Parameter.empty and name != "self"
                    and name not in given and parameter.kind is parameter.POSITIONAL_OR_KEYWORD):
                if not name.endswith("_inputs"):
                    raise HwaccelError(f"{self.model_class.__name__} requires {name!r}, "
                                       "which hwaccel cannot make")
                wanted[name] = self._first_int(name[:-len("inputs")] + "seq_len")
        generator = torch.Generator().manual_seed(TINY_SEED)
        vocab = self._vocab_size() if wanted else None
        ids: dict[str, Any] = {}
        for name, length in wanted.items():
            if length is None or vocab is None:
                raise HwaccelError(f"the config of {self.model_type!r} gives no length or "
                                   f"vocabulary for {name!r}")
            ids[name] = torch.randint(0, vocab, (batch_size, length), generator=generator)
        return ids

    def _vocab_size(self) -> int | None:
        """The vocabulary of the config's token ids: ``vocab_size``, else the first key of
        the config or a sub-config that ends in ``vocab_size``."""
        for config in self._configs():
            for name, value in sorted(vars(config).items(), key=lambda kv: kv[0] != "vocab_size"):
                if name.endswith("vocab_size") and isinstance(value, int) and value > 0:
                    return value
        return None

    def take(self, inputs: dict[str, Any], count: int) -> dict[str, Any]:
        """The first ``count`` examples of a batch of inputs."""
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

    def declares_output(self, name: str) -> bool:
        """True when the model class's forward returns an output type with field ``name``
        (its return annotation), or names no output type."""
        import dataclasses

        returned = inspect.signature(self.model_class.forward).return_annotation
        if not dataclasses.is_dataclass(returned):
            return True
        return name in {field.name for field in dataclasses.fields(returned)}

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the config implies for the subfamily's head.

        Classifiers: ``logits (batch, num_labels)``, where the output type has logits.
        DETR-family set-prediction detectors (configs that weigh their matching loss:
        ``eos_coefficient`` or a focal loss): ``pred_boxes (batch, queries, 4)`` and
        ``logits (batch, queries, classes)``, where classes is ``num_labels + 1`` (the
        softmax "no object" class that ``eos_coefficient`` weighs) unless the config uses a
        sigmoid focal loss, which scores each label on its own. Other heads (depth maps,
        whose resolution is the head's own, masks, keypoints): none beyond the shared
        batch-size check.
        """
        batch = int(inputs[self.pixel_key or "input_ids"].shape[0])
        if self.subfamily in ("image_classifier", "video_classifier"):
            if not self.declares_output("logits"):
                return {}
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
        return {}
