"""The ``vision-text`` pipeline: claims, subfamilies, workload, generated tests, a benchmark.

Family and pipeline labels are copied from shared/TAXONOMY.md (rule 2: clip, siglip, blip,
owlvit -> multimodal/vision-text); subfamilies are the pipeline's documented table
(hwaccel_pipeline_vision_text.SUBFAMILIES).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import benchmark_one, generate_and_run, run_with_expected_shapes
from hwaccel.kit.workloads import load_workload
from hwaccel.models.classify import classify, gather_evidence, reference_of
from hwaccel.models.resolve import resolve_model
from hwaccel_pipeline_vision_text import hwaccel_classify, subfamily_of
from hwaccel_pipeline_vision_text.workload import PROMPTS

WORKLOAD = "hwaccel_pipeline_vision_text.workload:VisionTextWorkload"
# model type -> subfamily, for the tiny models this pipeline must run
TINY = {"clip": "dual_encoder", "siglip": "dual_encoder", "blip": "dual_encoder",
        "owlvit": "open_vocabulary_detector"}
DUAL = [t for t, sub in TINY.items() if sub == "dual_encoder"]
FAST = ["--iterations", "3", "--min-seconds", "0.01", "--warmup", "1"]


@pytest.mark.parametrize("model_type, subfamily", TINY.items())
def test_tiny_models_are_claimed_by_the_vision_text_pipeline(plugins, model_type, subfamily):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert (result.family, result.pipeline, result.subfamily) == ("multimodal", "vision-text",
                                                                  subfamily)
    assert (result.plugin, result.distribution) == ("vision-text",
                                                    "hwaccel-pipeline-vision-text")
    assert result.workload == WORKLOAD
    assert result.signal == "config" and result.confidence == 1.0


@pytest.mark.parametrize("spec", ["tiny:vit", "tiny:bert", "tiny:llava"])
def test_other_pipelines_models_are_not_claimed(spec):
    ref = gather_evidence(resolve_model(spec))
    assert hwaccel_classify(dataclasses.replace(ref, label=reference_of(ref))) is None


@pytest.mark.parametrize("tasks, subfamily", [
    ({"BASE", "ZERO_SHOT_OBJECT_DETECTION"}, "open_vocabulary_detector"),
    ({"BASE", "IMAGE_CLASSIFICATION", "ZERO_SHOT_IMAGE_CLASSIFICATION"}, "dual_encoder"),
    ({"PRETRAINING", "RETRIEVAL"}, "document_retriever"),
])
def test_subfamily_table(tasks, subfamily):
    assert subfamily_of(frozenset(tasks)) == subfamily


@pytest.mark.parametrize("model_type", DUAL)
def test_dual_encoder_workload(plugins, model_type):
    workload = load_workload(f"tiny:{model_type}")
    text, vision = workload.text_config, workload.vision_config
    inputs = workload.make_inputs(2, 8)
    assert {"input_ids", "pixel_values"} <= inputs.keys()
    ids = inputs["input_ids"]
    assert ids.shape == (2, 8) and ids.min() >= 0 and ids.max() < text.vocab_size
    assert (ids[:, -1] == text.eos_token_id).all()
    channels = getattr(vision, "num_channels", 3)  # BLIP's vision config assumes RGB
    side = vision.image_size
    assert tuple(inputs["pixel_values"].shape) == (2, channels, side, side)
    outputs = workload.forward(workload.load_model(), inputs)
    # CLIP and BLIP project both towers to projection_dim; SigLIP's text head projects
    # onto the width of its vision tower, whose pooled output is the image embedding
    shared = getattr(workload.config, "projection_dim", None)
    text_dim = shared or text.projection_size
    image_dim = shared or vision.hidden_size
    assert text_dim == image_dim
    expected = {"logits_per_image": (2, 2), "logits_per_text": (2, 2),
                "text_embeds": (2, text_dim), "image_embeds": (2, image_dim)}
    assert workload.expected_shapes(inputs) == expected
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    assert outputs["logits_per_text"].allclose(outputs["logits_per_image"].T)


def test_open_vocabulary_detector_workload(plugins):
    workload = load_workload("tiny:owlvit")
    vision = workload.vision_config
    inputs = workload.make_inputs(2, 64)
    max_len = workload.text_config.max_position_embeddings
    assert inputs["input_ids"].shape == (4, min(64, max_len))  # two queries per image
    outputs = workload.forward(workload.load_model(), inputs)
    patches = (vision.image_size // vision.patch_size) ** 2
    expected = {"logits": (2, patches, 2), "pred_boxes": (2, patches, 4)}
    assert workload.expected_shapes(inputs) == expected
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    boxes = outputs["pred_boxes"]
    assert ((boxes >= 0) & (boxes <= 1)).all()


def _check_blip_2(workload, inputs, outputs):
    # the retrieval head reads text through the Q-Former, switched on in the tiny config
    assert workload.config.qformer_config.use_qformer_text_input
    queries = workload.config.num_query_tokens
    assert outputs["image_embeds"].shape[:2] == (2, queries)


def _check_colpali(workload, inputs, outputs):
    # the page is read as one image token per feature of the image encoder, before the text
    token = workload.config.vlm_config.image_token_id
    patches = (workload.vision_config.image_size // workload.vision_config.patch_size) ** 2
    assert ((inputs["input_ids"] == token).sum(dim=1) == patches).all()
    assert (inputs["input_ids"][:, :patches] == token).all()


def _check_colmodernvbert(workload, inputs, outputs):
    # a list of one image per example, its patch grid whole blocks of the pixel shuffle
    pixels = inputs["pixel_values"]
    assert pixels.dim() == 5 and pixels.shape[:2] == (2, 1)
    grid = pixels.shape[-1] // workload.vision_config.patch_size
    assert grid % workload.config.vlm_config.pixel_shuffle_factor == 0
    token = workload.config.vlm_config.image_token_id
    assert ((inputs["input_ids"] == token).sum(dim=1) > 0).all()


def _check_grounding_dino(workload, inputs, outputs):
    # one prompt per image that lists its queries; each query box inside the image
    assert inputs["input_ids"].shape[0] == 2
    boxes = outputs["pred_boxes"]
    assert boxes.shape == (2, workload.config.num_queries, 4)
    assert ((boxes >= 0) & (boxes <= 1)).all()


# Types that failed before the tiny-config rules and the prompt layouts, one per kind.
REGRESSIONS = {"blip-2": _check_blip_2, "colpali": _check_colpali,
               "colmodernvbert": _check_colmodernvbert,
               "grounding-dino": _check_grounding_dino}


@pytest.mark.parametrize("model_type", REGRESSIONS)
def test_previously_failing_types_run(plugins, model_type):
    workload, inputs, outputs = run_with_expected_shapes(f"tiny:{model_type}")
    assert all(value.shape[0] == 2 for value in outputs.values())
    REGRESSIONS[model_type](workload, inputs, outputs)


def test_prompt_groups_give_queries_per_image_and_a_task_per_image(plugins):
    # OmDet-Turbo (its timm backbone is not built here) takes class queries and a task
    workload = load_workload("tiny:omdet-turbo")
    workload.__dict__["config"] = workload.tiny_config(frozenset())
    inputs = workload.make_inputs(2, 8)
    assert inputs["classes_input_ids"].shape == (4, 8)
    assert inputs["classes_attention_mask"].shape == (4, 8)
    assert inputs["tasks_input_ids"].shape == (2, 8)
    assert inputs["classes_structure"].tolist() == [2, 2]
    assert tuple(inputs["pixel_values"].shape)[:2] == (2, 3)


def test_a_checkpoint_folder_uses_its_tokenizer_and_image_processor(plugins, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        PreTrainedTokenizerFast,
    )

    words = sorted({w for prompt in PROMPTS for w in prompt.split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                                        unk_token="[UNK]", eos_token="[EOS]")
    tokenizer.save_pretrained(tmp_path)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 4}
    config = CLIPConfig(text_config={**small, "vocab_size": len(vocab), "eos_token_id": 2,
                                     "pad_token_id": 0},
                        vision_config={**small, "image_size": 32, "patch_size": 8},
                        projection_dim=16)
    CLIPModel(config).save_pretrained(tmp_path)
    # a processor that only rescales to [0, 1]: without it images would span [-1, 1]
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                       image_mean=[0.0] * 3, image_std=[1.0] * 3).save_pretrained(tmp_path)
    result = classify(str(tmp_path), plugins).classification
    assert (result.pipeline, result.subfamily, result.signal) == ("vision-text",
                                                                  "dual_encoder", "local")
    workload = load_workload(str(tmp_path), result)
    inputs = workload.make_inputs(2, 8)
    first = [vocab[w] for w in PROMPTS[0].split()]
    assert inputs["input_ids"][0].tolist() == first + [0] * (8 - len(first))
    assert inputs["attention_mask"][0].tolist() == [1] * len(first) + [0] * (8 - len(first))
    pixels = inputs["pixel_values"]
    assert tuple(pixels.shape) == (2, 3, 32, 32)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() > 0.5
    outputs = workload.forward(workload.load_model(), inputs)
    assert tuple(outputs["text_embeds"].shape) == (2, 16)
    assert tuple(outputs["logits_per_image"].shape) == (2, 2)


@pytest.mark.slow
def test_generated_files_pass_ruff_and_pytest(tmp_path):
    # per model: 3 shared checks and two of its subfamily's
    generate_and_run([f"tiny:{t}" for t in TINY], tmp_path / "generated",
                     expect_passed=5 * len(TINY))


@pytest.mark.slow
def test_benchmark_records_a_success(tmp_db):
    row = benchmark_one("tiny:clip", tmp_db, "--batch-size", "2", "--seq-len", "8", *FAST)
    assert (row["family"], row["pipeline"], row["model_type"]) == ("multimodal", "vision-text",
                                                                   "clip")
    shapes = json.loads(row["output_shape"])
    assert shapes["logits_per_image"] == [2, 2] and shapes["logits_per_text"] == [2, 2]
