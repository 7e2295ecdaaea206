"""The ``vision`` pipeline: claims, subfamilies, workload, generated tests and a benchmark.

Family and pipeline labels are copied from shared/TAXONOMY.md (rule 5: vit -> vision/vision);
subfamilies are the pipeline's documented table (hwaccel_pipeline_vision.SUBFAMILIES).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import (
    assert_same_weights,
    benchmark_one,
    generate_and_run,
    run_with_expected_shapes,
)
from hwaccel.kit.workloads import load_workload
from hwaccel.models.classify import classify, gather_evidence, reference_of
from hwaccel.models.resolve import resolve_model
from hwaccel_pipeline_vision import hwaccel_classify, subfamily_of

WORKLOAD = "hwaccel_pipeline_vision.workload:VisionWorkload"
# model type -> subfamily, for the tiny models this pipeline must run
TINY = {"vit": "image_classifier", "resnet": "image_classifier", "detr": "object_detector"}
FAST = ["--iterations", "3", "--min-seconds", "0.01", "--warmup", "1"]


@pytest.mark.parametrize("model_type, subfamily", TINY.items())
def test_tiny_models_are_claimed_by_the_vision_pipeline(plugins, model_type, subfamily):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert (result.family, result.pipeline, result.subfamily) == ("vision", "vision", subfamily)
    assert (result.plugin, result.distribution) == ("vision", "hwaccel-pipeline-vision")
    assert result.workload == WORKLOAD
    assert result.signal == "config" and result.confidence == 1.0


def _labelled(spec: str):
    ref = gather_evidence(resolve_model(spec))
    return dataclasses.replace(ref, label=reference_of(ref))


@pytest.mark.parametrize("spec", ["tiny:bert", "tiny:clip", "tiny:whisper"])
def test_other_pipelines_models_are_not_claimed(spec):
    assert hwaccel_classify(_labelled(spec)) is None


@pytest.mark.parametrize("tasks, architecture, subfamily", [
    ({"BASE", "IMAGE", "VIDEO_CLASSIFICATION"}, None, "video_classifier"),
    ({"BASE", "IMAGE_SEGMENTATION", "OBJECT_DETECTION"}, None, "object_detector"),
    ({"BASE", "DEPTH_ESTIMATION", "SEMANTIC_SEGMENTATION"}, None, "depth_estimator"),
    ({"BASE", "IMAGE_CLASSIFICATION", "SEMANTIC_SEGMENTATION"}, None, "image_segmenter"),
    ({"BASE", "IMAGE", "IMAGE_CLASSIFICATION"}, None, "image_classifier"),
    ({"BASE", "MASK_GENERATION"}, "SamModel", "mask_generator"),
    ({"BACKBONE", "BASE"}, None, "image_encoder"),
    ({"BASE", "IMAGE", "IMAGE_CLASSIFICATION"}, "ViTModel", "image_encoder"),
    ({"BASE", "IMAGE_CLASSIFICATION", "SEMANTIC_SEGMENTATION"},
     "MobileNetV2ForImageClassification", "image_classifier"),
])
def test_subfamily_table(tasks, architecture, subfamily):
    assert subfamily_of(frozenset(tasks), architecture) == subfamily


def test_a_checkpoint_folder_runs_its_own_class_through_its_image_processor(plugins, tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                       intermediate_size=64, image_size=48, patch_size=16)
    ViTModel(config).save_pretrained(tmp_path)
    # a processor that only rescales to [0, 1]: without it images would span [-1, 1]
    ViTImageProcessor(size={"height": 48, "width": 48}, image_mean=[0.0] * 3,
                      image_std=[1.0] * 3).save_pretrained(tmp_path)
    result = classify(str(tmp_path), plugins).classification
    assert (result.pipeline, result.subfamily, result.signal) == ("vision", "image_encoder",
                                                                  "local")
    workload = load_workload(str(tmp_path), result)
    inputs = workload.make_inputs(3, 8)
    pixels = inputs["pixel_values"]
    assert tuple(pixels.shape) == (3, 3, 48, 48)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() > 0.5
    model = workload.load_model()
    assert type(model).__name__ == "ViTModel" and not model.training
    outputs = workload.forward(model, inputs)
    patches = (48 // 16) ** 2
    assert tuple(outputs["last_hidden_state"].shape) == (3, patches + 1, 32)


# The images each tiny model's own image processor class makes: (PIL class, side) where
# the config fixes no image size, as transformers' processor defaults give it.
PROCESSORS = {"vit": "ViTImageProcessorPil", "resnet": "ConvNextImageProcessorPil",
              "detr": "DetrImageProcessorPil"}


@pytest.mark.parametrize("model_type", TINY)
def test_tiny_workload_inputs_forward_and_shapes(plugins, model_type):
    import transformers

    classification = classify(f"tiny:{model_type}", plugins).classification
    workload = load_workload(f"tiny:{model_type}", classification)
    config = workload.config
    inputs = workload.make_inputs(2, 8)
    assert workload.input_source == "processor-class"
    defaults = getattr(transformers, PROCESSORS[model_type])().size
    side = getattr(config, "image_size", None) or defaults.get(
        "height", defaults.get("shortest_edge"))
    assert tuple(inputs["pixel_values"].shape) == (2, config.num_channels, side, side)
    assert inputs["pixel_values"].equal(workload.make_inputs(2, 8)["pixel_values"])
    model = workload.load_model()
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    if model_type == "detr":
        # DETR scores every query over the labels plus "no object"
        assert expected == {"logits": (2, config.num_queries, config.num_labels + 1),
                            "pred_boxes": (2, config.num_queries, 4)}
        assert config.backbone_config.model_type == "resnet"  # not timm
        assert inputs.keys() == {"pixel_values", "pixel_mask"}
    else:
        assert expected == {"logits": (2, config.num_labels)}
        assert inputs.keys() == {"pixel_values"}
    assert {name: tuple(outputs[name].shape) for name in expected} == expected


def _check_dpt(workload, inputs, outputs):
    # a ViT backbone shrunk to a few layers still hands its neck one map per neck width
    config = workload.config
    assert len(config.backbone_out_indices) == len(config.neck_hidden_sizes)
    assert max(config.backbone_out_indices) < config.num_hidden_layers
    assert outputs["predicted_depth"].shape[0] == 2


def _check_rt_detr(workload, inputs, outputs):
    # the backbone keeps the three stages its encoder's input channels list
    config = workload.config
    assert len(config.backbone_config.out_indices) == len(config.encoder_in_channels) == 3


def _check_beit(workload, inputs, outputs):
    # the default config selects one stage; the segmentation head reads four
    assert len(workload.config.out_indices) == 4
    labels = workload.config.num_labels
    assert outputs["logits"].shape[:2] == (2, labels)


def _check_imagegpt(workload, inputs, outputs):
    # the image is a sequence of colour-cluster ids, one per position
    ids = inputs["input_ids"]
    assert ids.shape == (2, workload.config.n_positions)
    assert 0 <= ids.min() and ids.max() < workload.config.vocab_size


def _check_lightglue(workload, inputs, outputs):
    # each example is a pair of images to match
    pixels = inputs["pixel_values"]
    assert pixels.dim() == 5 and pixels.shape[:2] == (2, 2)


def _check_videomt(workload, inputs, outputs):
    # a clip of frames, its length the default where the config names none; the model
    # answers per frame, its outputs flattened over the clips and their frames
    clip = inputs["pixel_values_videos"]
    assert clip.dim() == 5 and clip.shape[0] == 2 and clip.shape[1] > 1
    assert outputs["class_queries_logits"].shape[0] == 2 * clip.shape[1]


def _block_channels_chain(backbone):
    """Assert a ``block_configs`` backbone's channels chain from its stem through its blocks
    ([kernel, in, out, stride, se] rows), narrowed."""
    rows = [row for stage in backbone.block_configs for row in stage]
    assert backbone.stem_channels[-1] == rows[0][1]
    assert all(a[2] == b[1] for a, b in zip(rows, rows[1:], strict=False))
    assert max(max(row[1], row[2]) for row in rows) <= 64


def _check_pp_lcnet_v4(workload, inputs, outputs):
    # the block rows' channels shrink alike, the stem's output with them (the stem used to
    # shrink while the blocks kept their default channels)
    _block_channels_chain(workload.config)


# Types that failed before the backbone rules and the input layouts, one per kind.
REGRESSIONS = {"dpt": _check_dpt, "rt_detr": _check_rt_detr, "beit": _check_beit,
               "imagegpt": _check_imagegpt, "lightglue": _check_lightglue,
               "videomt": _check_videomt, "pp_lcnet_v4": _check_pp_lcnet_v4}


@pytest.mark.parametrize("model_type", REGRESSIONS)
def test_previously_failing_types_run(plugins, model_type):
    workload, inputs, outputs = run_with_expected_shapes(f"tiny:{model_type}")
    REGRESSIONS[model_type](workload, inputs, outputs)


def _unsearched(spec):
    """The workload of ``spec`` with its fully shrunk tiny config, without the search."""
    workload = load_workload(spec)
    workload.__dict__["config"] = workload.tiny_config(frozenset())
    return workload


def test_a_shrunk_block_backbone_runs_on_its_own(plugins):
    # pp_ocrv6_small_det: its backbone's stem shrank to 64 channels while its blocks kept
    # 96; the whole model still fails as transformers' default config does (a one-stage
    # backbone under a four-level neck)
    import torch
    from transformers import AutoBackbone

    backbone = _unsearched("tiny:pp_ocrv6_small_det").config.backbone_config
    _block_channels_chain(backbone)
    with torch.inference_mode():
        maps = AutoBackbone.from_config(backbone).eval()(torch.rand(1, 3, 64, 64)).feature_maps
    assert [m.shape[1] for m in maps] == [backbone.stage_out_channels[-1]]


def test_a_text_line_recogniser_gets_its_processors_text_line(plugins):
    # pp_ocrv5_mobile_rec: images the size its (torchvision-only) processor class declares,
    # a 48-pixel-high line, which the default config's stride-2 stages cannot pool
    workload = _unsearched("tiny:pp_ocrv5_mobile_rec")
    assert workload.image_size == (48, 320)
    assert tuple(workload.make_inputs(2, 8)["pixel_values"].shape) == (2, 3, 48, 320)
    assert workload.input_source == "processor-settings"


def test_a_failure_on_the_processors_sizes_that_the_default_shares_is_the_models(plugins):
    from hwaccel.kit.failures import AttributedError

    with pytest.raises(AttributedError) as caught:
        _ = load_workload("tiny:pp_ocrv5_mobile_rec").config
    assert caught.value.category == "model"
    assert "Output size is too small" in caught.value.message


def test_tiny_builds_are_identical(plugins):
    workload = load_workload("tiny:detr")
    assert_same_weights(workload.load_model(), workload.load_model())


@pytest.mark.slow
def test_generated_files_pass_ruff_and_pytest(tmp_path):
    # per model: 3 shared checks, batch independence, image dependence, one head check
    generate_and_run([f"tiny:{t}" for t in TINY], tmp_path / "generated",
                     expect_passed=6 * len(TINY))


@pytest.mark.slow
def test_benchmark_records_a_success(tmp_db):
    from transformers import AutoConfig

    row = benchmark_one("tiny:vit", tmp_db, "--batch-size", "2", *FAST)
    labels = AutoConfig.for_model("vit").num_labels
    assert (row["family"], row["pipeline"], row["model_type"]) == ("vision", "vision", "vit")
    assert json.loads(row["output_shape"]) == {"logits": [2, labels]}
