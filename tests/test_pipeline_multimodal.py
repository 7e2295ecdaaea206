"""The multimodal pipeline: labels, the LLaVA and PaliGemma workloads, previously failing kinds
of multimodal models (dynamic-grid, tiled, audio-language, Q-Former, position-mask, document QA,
VQA), a checkpoint folder with its own processor, generated tests and a benchmark.

Expected family and pipeline are copied from shared/TAXONOMY.md (rule 3: llava, paligemma,
idefics2, qwen2_vl -> multimodal/multimodal); expected subfamilies from the table in
hwaccel_pipeline_multimodal's docstring. Sizes are read from the models' own configs.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import benchmark_one, generate_and_run, workload_and_model
from hwaccel.kit.workloads import load_workload
from hwaccel.models.classify import classify
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
    assert workload.placeholder_counts(inputs) == {config.image_token_id: image_tokens}
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


def _run(workload, model, rows=2, seq_len=6):
    """Inputs, outputs and output shapes of one forward call."""
    inputs = workload.make_inputs(rows, seq_len)
    outputs = workload.forward(model, inputs)
    assert all(torch.isfinite(value).all() for value in outputs.values())
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert shapes == workload.expected_shapes(inputs)
    return inputs, shapes


def _placeholders(inputs, token):
    return (inputs["input_ids"] == token).sum(dim=1).tolist()


def test_a_dynamic_grid_model_gets_patches_and_their_grid(plugins):
    """Qwen2-VL: flattened patches with a (time, height, width) grid per picture, one image
    token per merged square of patches, M-RoPE modality types."""
    workload, model = workload_and_model("tiny:qwen2_vl", plugins)
    inputs, shapes = _run(workload, model)
    config = model.config
    grid = inputs["image_grid_thw"]
    merge = config.vision_config.spatial_merge_size
    assert grid.shape == (2, 3) and inputs["pixel_values"].shape[0] == int(grid.prod(-1).sum())
    per_picture = [int(g.prod()) // merge**2 for g in grid]
    assert _placeholders(inputs, config.image_token_id) == per_picture
    assert inputs["mm_token_type_ids"].eq(1).sum(dim=1).tolist() == per_picture
    assert shapes["logits"] == (2, inputs["input_ids"].shape[1], config.text_config.vocab_size)
    assert workload.input_source == "processor-class"


def test_a_tiled_model_gets_one_row_of_tiles_per_prompt(plugins):
    """Idefics2: pixels (batch, pictures, channels, height, width) with their pixel mask; the
    perceiver resamples each picture to a fixed number of image tokens."""
    workload, model = workload_and_model("tiny:idefics2", plugins)
    inputs, _ = _run(workload, model)
    assert inputs["pixel_values"].dim() == 5 and inputs["pixel_values"].shape[:2] == (2, 1)
    assert inputs["pixel_attention_mask"].shape[:2] == (2, 1)
    queries = model.config.perceiver_config.resampler_n_latents
    assert _placeholders(inputs, model.config.image_token_id) == [queries] * 2


def test_an_audio_language_model_gets_features_and_audio_tokens(plugins):
    """GLM-ASR: log-mel features from the type's feature extractor with their mask, one
    audio token per feature of the encoder."""
    workload, model = workload_and_model("tiny:glmasr", plugins)
    inputs, _ = _run(workload, model)
    assert workload.medium == "audio" and workload.input_source == "processor-class"
    features = inputs["input_features"]
    assert features.shape[:2] == (2, model.config.audio_config.num_mel_bins)
    assert inputs["input_features_mask"].shape == (2, features.shape[-1])
    with torch.inference_mode():
        encoded = model.model.get_audio_features(features, inputs["input_features_mask"])
    tokens = encoded.pooler_output.shape[0] // 2
    assert _placeholders(inputs, model.config.audio_token_id) == [tokens] * 2


def test_a_q_former_model_reads_its_own_instruction(plugins):
    """InstructBLIP: the Q-Former reads an instruction of its own vocabulary; the prompt
    holds one image token (a free id of the tiny vocabulary) per query."""
    workload, model = workload_and_model("tiny:instructblip", plugins)
    inputs, _ = _run(workload, model)
    config = model.config
    assert inputs["qformer_input_ids"].max() < config.qformer_config.vocab_size
    assert config.image_token_id < config.text_config.vocab_size
    assert _placeholders(inputs, config.image_token_id) == [config.num_query_tokens] * 2


def test_a_position_mask_marks_the_image_features(plugins):
    """Kosmos-2 names no image token: a mask marks where its latent queries go."""
    workload, model = workload_and_model("tiny:kosmos-2", plugins)
    inputs, _ = _run(workload, model)
    mask = inputs["image_embeds_position_mask"]
    assert mask.sum(dim=1).tolist() == [model.config.latent_query_num] * 2


def test_document_question_answering_reads_boxes_and_the_page(plugins):
    """LayoutLMv3: token ids with one box each on the 0-1000 grid, and the page image whose
    patches (and a class token) it appends to the text."""
    workload, model = workload_and_model("tiny:layoutlmv3", plugins)
    inputs, shapes = _run(workload, model)
    boxes = inputs["bbox"]
    assert boxes.shape == (*inputs["input_ids"].shape, 4)
    assert boxes.min() >= 0 and boxes.max() <= 1000
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    side = inputs["pixel_values"].shape[-1] // model.config.patch_size
    length = inputs["input_ids"].shape[1] + side * side + 1
    assert shapes == {"start_logits": (2, length), "end_logits": (2, length)}


def test_visual_question_answering_scores_every_answer(plugins):
    """ViLT: the question and the picture in, one score per answer label out."""
    workload, model = workload_and_model("tiny:vilt", plugins)
    inputs, shapes = _run(workload, model)
    assert inputs["pixel_values"].shape[0] == 2 and "pixel_mask" in inputs
    assert shapes == {"logits": (2, model.config.num_labels)}


def test_tiny_configs_keep_the_sizes_their_connectors_need(plugins):
    """Pooling to a square of tokens and pixel shuffles need patch grids they divide."""
    import math

    gemma = load_workload("tiny:gemma3", classify("tiny:gemma3", plugins).classification)
    config = gemma.tiny_config(frozenset())
    patches = config.vision_config.image_size // config.vision_config.patch_size
    side = math.isqrt(config.mm_tokens_per_image)
    assert side * side == config.mm_tokens_per_image and patches % side == 0
    idefics = load_workload("tiny:idefics3", classify("tiny:idefics3", plugins).classification)
    config = idefics.tiny_config(frozenset())
    patches = config.vision_config.image_size // config.vision_config.patch_size
    assert patches % config.scale_factor == 0


def test_tiles_are_read_from_layers_the_tiny_tower_has(plugins):
    """Mllama: the tower returns its intermediate layers' outputs beside its last one; the
    tiny config keeps the indices within its depth and the projector's width follows."""
    workload, model = workload_and_model("tiny:mllama", plugins)
    vision = model.config.vision_config
    layers = vision.intermediate_layers_indices
    assert layers and max(layers) < vision.num_hidden_layers
    assert vision.vision_output_dim == vision.hidden_size * (len(layers) + 1)
    inputs, _ = _run(workload, model, rows=1, seq_len=4)
    assert inputs["cross_attention_mask"].shape[-1] == vision.max_num_tiles
    assert workload.input_source == "processor-class"


def test_a_processor_of_fixed_sizes_gets_a_tower_that_cuts_them_into_known_counts(plugins):
    """Aria: the image processor only makes 490 or 980 px pictures; the tiny tower's patch
    size cuts them into a patch count the projector's table maps to its queries."""
    workload, model = workload_and_model("tiny:aria", plugins)
    config = model.config
    inputs, _ = _run(workload, model, rows=1, seq_len=4)
    side = inputs["pixel_values"].shape[-1]
    patches = (side // config.vision_config.patch_size) ** 2
    assert side in (490, 980) and patches in config.projector_patch_to_query_dict
    queries = config.projector_patch_to_query_dict[patches]
    assert _placeholders(inputs, config.image_token_id) == [queries]
    assert workload.input_source == "processor-class"


def test_tiled_crops_come_with_the_patches_each_image_token_pools(plugins):
    """Molmo2 (a torchvision-only processor): a crop-sized picture's global view and tile,
    the patch indices each image token pools in windows of the processor's pooling size,
    and each crop's grid of windows; its placeholder id moved into the tiny vocabulary."""
    workload, model = workload_and_model("tiny:molmo2", plugins)
    config = model.config
    assert config.image_token_id < config.text_config.vocab_size
    inputs, _ = _run(workload, model)
    grids, pooling = inputs["image_grids"], inputs["image_token_pooling"]
    tokens = int(grids[0, 0] * grids[0, 1] + grids[0, 2] * grids[0, 3])
    patches = inputs["pixel_values"].shape[2]
    assert inputs["image_num_crops"].tolist() == [2, 2]
    assert pooling.shape == (2 * tokens, 4) and pooling.max() < 2 * patches
    assert _placeholders(inputs, config.image_token_id) == [tokens] * 2


def test_navit_packed_patches_match_the_processor_layout(plugins):
    """MiniCPM-OCR (a torchvision-only processor): the patches of every picture packed
    NaViT-style with each picture's grid, as the PIL processor of the family packs them."""
    from transformers import MiniCPMV4_6ImageProcessorPil, PretrainedConfig

    from hwaccel_pipeline_multimodal.pictures import _navit_patches, pictures

    workload, model = workload_and_model("tiny:minicpm_ocr", plugins)
    inputs, _ = _run(workload, model)
    sizes, patch = inputs["target_sizes"], model.config.vision_config.patch_size
    assert inputs["pixel_values"].shape == (1, 3, patch, int(sizes.prod(-1).sum()) * patch)
    config = PretrainedConfig(patch_size=16, image_size=224, num_channels=3)
    packer = MiniCPMV4_6ImageProcessorPil(patch_size=16, scale_resolution=224,
                                         slice_mode=False, downsample_mode="4x",
                                         image_mean=[0.5] * 3, image_std=[0.5] * 3)
    made = packer(images=[[picture] for picture in pictures(2, 224, 224)],
                  return_tensors="pt")
    ours = next(_navit_patches(config, 2))
    assert made["pixel_values"].equal(ours["pixel_values"])
    assert made["target_sizes"].equal(ours["target_sizes"])

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
    assert image_tokens.tolist() == [patches] * 2
    assert folder.input_source == "processor"
    assert folder.placeholder_counts(inputs) == {model.config.image_token_id: patches}
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
    from hwaccel.kit.tiny import tiny_config

    row = benchmark_one("tiny:paligemma", tmp_path / "multimodal.duckdb", "--batch-size", "1",
                        "--seq-len", "8", "--iterations", "3", "--min-seconds", "0.01",
                        "--warmup", "1")
    assert (row["family"], row["pipeline"]) == ("multimodal", "multimodal")
    config = tiny_config("paligemma")
    vision = config.vision_config
    prompt = (vision.image_size // vision.patch_size) ** 2 + 8
    assert json.loads(row["output_shape"]) == {"logits": [1, prompt,
                                                       config.text_config.vocab_size]}


@pytest.mark.parametrize("model_type", ["granite_speech", "granite_speech_plus"])
def test_a_projector_mask_marks_each_feature_of_the_windowed_q_former(plugins, model_type):
    """Granite Speech: its extractor needs torchaudio, so the features are synthetic; the
    mask only the forward takes marks the projector's outputs (queries per window of encoder
    frames), as the extractor's own count does, and the prompt holds one audio token each."""
    workload, model = workload_and_model(f"tiny:{model_type}", plugins)
    inputs, shapes = _run(workload, model)
    config = model.config
    assert workload.input_source == "synthetic"
    frames = inputs["input_features"].shape[1]
    windows = -(-frames // config.window_size)
    per_recording = windows * (config.window_size // config.downsample_rate)
    mask = inputs["input_features_mask"]
    assert mask.dtype == torch.bool and mask.shape == (2, per_recording) and mask.all()
    assert _placeholders(inputs, config.audio_token_id) == [per_recording] * 2
    assert shapes["logits"] == (2, inputs["input_ids"].shape[1], config.text_config.vocab_size)


def test_a_streaming_speech_model_reads_codec_codes_beside_each_token(plugins):
    """Kyutai speech-to-text: the forward takes no audio; its generation encodes the
    recording into codec codes beside each text token. The prompt has one token per code
    frame, the codes of the recording enter one frame behind, after the audio BOS."""
    from hwaccel_pipeline_multimodal.recordings import audio_inputs

    workload, model = workload_and_model("tiny:kyutai_speech_to_text", plugins)
    inputs, shapes = _run(workload, model)
    config = model.config
    media, made_by_class = audio_inputs(config.model_type, config, model, 2,
                                        workload.forward_parameters)
    assert made_by_class and workload.input_source == "processor-class"
    samples = media["input_values"].shape[-1]
    frames = int(model.codec_model.get_encoded_length(torch.tensor(samples)))
    ids = inputs["input_ids"]
    assert ids.shape == (2, frames, 1 + config.num_codebooks)
    assert ids[:, 0, 0].eq(config.bos_token_id).all()
    assert ids[:, 0, 1:].eq(config.audio_bos_token_id).all()
    with torch.inference_mode():
        codes = model.codec_model.encode(media["input_values"]).audio_codes.transpose(1, 2)
    assert ids[:, 1:, 1:].equal(codes[:, :frames - 1])
    assert shapes["logits"] == (2, frames, config.vocab_size)
    assert not workload.can_generate


def test_a_hierarchical_patch_encoder_gets_channels_last_patches_with_frames(plugins):
    """Inkling: its (torchvision-only) processor cuts pictures into patches repeated over
    the temporal patch size, channels last; one image token per patch."""
    workload, model = workload_and_model("tiny:inkling_mm_model", plugins)
    vision = model.config.vision_config
    inputs, _ = _run(workload, model, rows=2, seq_len=4)
    pixels = inputs["pixel_values"]
    assert pixels.shape[1:] == (vision.temporal_patch_size, vision.patch_size,
                                vision.patch_size, vision.num_channels)
    assert _placeholders(inputs, model.config.image_token_id) == [pixels.shape[0] // 2] * 2
