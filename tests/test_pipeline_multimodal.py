"""The multimodal pipeline: labels, the LLaVA and PaliGemma workloads, a checkpoint folder with
its own processor, generated tests and a benchmark.

Expected family and pipeline are copied from shared/TAXONOMY.md (rule 3: llava, paligemma,
idefics2, qwen2_vl -> multimodal/multimodal); expected subfamilies from the table in
hwaccel_pipeline_multimodal's docstring. Sizes are read from the models' own configs.
"""

from __future__ import annotations

import json

import pytest

from conftest import benchmark_one, generate_and_run, workload_and_model
from hwaccel.classify import classify
from hwaccel.errors import HwaccelError
from hwaccel.workloads import load_workload
from hwaccel_pipeline_multimodal import subfamily_of

WORKLOAD = "hwaccel_pipeline_multimodal.workload:MultimodalWorkload"
GENERATION = "vision_language_generation"


@pytest.fixture(scope="module")
def llava(plugins):
    return workload_and_model("tiny:llava", plugins)


@pytest.fixture(scope="module")
def paligemma(plugins):
    return workload_and_model("tiny:paligemma", plugins)


@pytest.mark.parametrize("model_type, subfamily", [
    ("llava", GENERATION), ("paligemma", GENERATION), ("idefics2", GENERATION),
    ("qwen2_vl", GENERATION), ("layoutlm", "document_question_answering"),
    ("vilt", "visual_question_answering")])
def test_vision_language_models_are_claimed(plugins, model_type, subfamily):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert (result.family, result.subfamily, result.pipeline) == (
        "multimodal", subfamily, "multimodal")
    assert result.plugin == "multimodal"
    assert result.distribution == "hwaccel-pipeline-multimodal"
    assert result.workload == WORKLOAD
    assert (result.signal, result.confidence) == ("config", 1.0)


@pytest.mark.parametrize("model", ["tiny:clip", "tiny:whisper", "tiny:gpt2"])
def test_other_models_are_left_to_other_pipelines(plugins, model):
    result = classify(model, plugins).classification
    assert result.plugin != "multimodal" and result.pipeline != "multimodal"


@pytest.mark.parametrize("tasks, subfamily", [
    ({"IMAGE_TEXT_TO_TEXT", "CAUSAL_LM"}, GENERATION), ({"VISION_2_SEQ"}, GENERATION),
    ({"VISUAL_QUESTION_ANSWERING"}, "visual_question_answering"), ({"CAUSAL_LM"}, None)])
def test_subfamily_table(tasks, subfamily):
    assert subfamily_of(tasks) == subfamily


def _check_prompt_forward_generate(workload, model, image_tokens):
    config = model.config
    vision = config.vision_config
    inputs = workload.make_inputs(2, 5)
    ids = inputs["input_ids"]
    assert (ids == config.image_token_id).sum(dim=1).tolist() == [image_tokens] * 2
    assert ids.shape[1] == image_tokens + 5
    assert ((ids >= 0) & (ids < config.text_config.vocab_size)).all()
    assert tuple(inputs["pixel_values"].shape) == (
        2, vision.num_channels, vision.image_size, vision.image_size)
    assert not inputs["pixel_values"][0].equal(inputs["pixel_values"][1])
    again = workload.make_inputs(2, 5)
    assert all(again[name].equal(value) for name, value in inputs.items())
    outputs = workload.forward(model, inputs)
    assert set(outputs) == {"logits"}
    assert tuple(outputs["logits"].shape) == (2, ids.shape[1], config.text_config.vocab_size)
    assert workload.expected_shapes(inputs) == {"logits": tuple(outputs["logits"].shape)}
    tokens = workload.generate(model, inputs, new_tokens=3)
    assert tuple(tokens.shape) == (2, ids.shape[1] + 3)  # exactly 3 tokens added
    assert tokens[:, :ids.shape[1]].equal(ids)  # after the unchanged prompt
    assert workload.generated_length(inputs, 3) == tokens.shape[1]


def test_llava_prompt_has_one_image_token_per_clip_patch(llava):
    workload, model = llava
    vision = model.config.vision_config
    # CLIP yields a class token plus one per patch; the "default" strategy drops the former
    assert model.config.vision_feature_select_strategy == "default"
    patches = (vision.image_size // vision.patch_size) ** 2
    assert workload.image_token_count() == patches
    text = model.config.text_config
    assert model.config.image_token_id not in (text.bos_token_id, text.eos_token_id)
    _check_prompt_forward_generate(workload, model, patches)


def test_paligemma_prompt_has_one_image_token_per_siglip_patch(paligemma):
    workload, model = paligemma
    vision = model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    assert model.config.text_config.num_image_tokens == patches
    assert vision.projection_dim == model.config.text_config.hidden_size
    _check_prompt_forward_generate(workload, model, patches)


def test_extractive_subfamilies_are_refused_clearly(plugins):
    workload = load_workload("tiny:layoutlm", classify("tiny:layoutlm", plugins).classification)
    with pytest.raises(HwaccelError, match="runs vision_language_generation models"):
        workload.make_inputs(1, 4)


def _llava_folder(folder, model):
    """Save the tiny LLaVA with a processor (CLIP image processor + word-level tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

    from hwaccel_pipeline_multimodal.workload import TEXT

    config = model.config
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for word in TEXT.lower().split():
        vocab.setdefault(word, len(vocab))
    vocab["<image>"] = config.image_token_id
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>", pad_token="</s>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    size = config.vision_config.image_size
    images = CLIPImageProcessor(size={"shortest_edge": size},
                                crop_size={"height": size, "width": size})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer,
                               patch_size=config.vision_config.patch_size,
                               vision_feature_select_strategy="default",
                               num_additional_image_tokens=1)  # CLIP's class token
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def test_a_checkpoint_folder_uses_its_processor(plugins, llava, tmp_path):
    from transformers import LlavaProcessor

    workload, model = llava
    _llava_folder(tmp_path, model)
    result = classify(str(tmp_path), plugins).classification
    assert (result.family, result.subfamily, result.pipeline) == (
        "multimodal", GENERATION, "multimodal")
    assert result.signal == "local" and result.model_class == "LlavaForConditionalGeneration"
    folder = load_workload(str(tmp_path), result)
    assert isinstance(folder.processor, LlavaProcessor)
    inputs = folder.make_inputs(2, 4)
    # the processor's own count of image tokens agrees with the one computed from the config
    vision = model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    image_tokens = (inputs["input_ids"] == model.config.image_token_id).sum(dim=1)
    assert image_tokens.tolist() == [patches] * 2 == [workload.image_token_count()] * 2
    loaded = folder.load_model()
    outputs = folder.forward(loaded, inputs)
    assert tuple(outputs["logits"].shape) == (
        2, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    reference = workload.forward(model, inputs)["logits"]
    assert (outputs["logits"] - reference).abs().max().item() < 1e-5
    tokens = folder.generate(loaded, inputs, new_tokens=2)
    assert tokens.shape[1] == inputs["input_ids"].shape[1] + 2


@pytest.mark.slow
def test_generated_tests_pass_for_llava_and_paligemma(tmp_path):
    # 3 shared checks, the image-token check and generate, for each model
    generate_and_run(["tiny:llava", "tiny:paligemma"], tmp_path / "generated",
                     expect_passed=10)


@pytest.mark.slow
def test_benchmark_records_a_success(tmp_path):
    from hwaccel.tiny import tiny_config

    row = benchmark_one("tiny:paligemma", tmp_path / "multimodal.duckdb", "--batch-size", "1",
                        "--seq-len", "8", "--iterations", "3", "--min-seconds", "0.01",
                        "--warmup", "1")
    assert (row["family"], row["pipeline"]) == ("multimodal", "multimodal")
    config = tiny_config("paligemma")
    vision = config.vision_config
    prompt = (vision.image_size // vision.patch_size) ** 2 + 8
    assert json.loads(row["output_shape"]) == {"logits": [1, prompt,
                                                       config.text_config.vocab_size]}
