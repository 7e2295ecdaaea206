"""The audio pipeline: labels, the Whisper and wav2vec2 workloads, generated tests, a benchmark.

Expected family and pipeline are copied from shared/TAXONOMY.md (rule 4: whisper, wav2vec2 ->
audio/audio); expected subfamilies from the table in hwaccel_pipeline_audio's docstring. Sizes
are read from the models' own configs and modules, never from the workload under test.

The composite and codebook types (transducers, MusicGen, Dia, speech encoder-decoders,
wav2vec2-BERT, Canary) once failed because their inputs were shaped for a plain speech
recogniser; each kind has a test that runs one and checks its inputs and outputs against its
config.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import benchmark_one, generate_and_run, workload_and_model
from hwaccel.kit.workloads import load_workload
from hwaccel.models.classify import classify
from hwaccel_pipeline_audio import subfamily_of
from hwaccel_pipeline_audio.workload import waveforms

WORKLOAD = "hwaccel_pipeline_audio.workload:AudioWorkload"


@pytest.fixture(scope="module")
def whisper(plugins):
    return workload_and_model("tiny:whisper", plugins)


@pytest.fixture(scope="module")
def wav2vec2(plugins):
    return workload_and_model("tiny:wav2vec2", plugins)


@pytest.mark.parametrize("model_type, subfamily", [
    ("whisper", "speech_recognition"), ("wav2vec2", "speech_recognition"),
    ("hubert", "speech_recognition"), ("audio-spectrogram-transformer", "audio_classifier"),
    ("vits", "speech_synthesis")])
def test_audio_models_are_claimed_with_their_subfamily(plugins, model_type, subfamily):
    result = classify(f"tiny:{model_type}", plugins).classification
    assert (result.family, result.subfamily, result.pipeline) == ("audio", subfamily, "audio")
    assert result.plugin == "audio" and result.distribution == "hwaccel-pipeline-audio"
    assert result.workload == WORKLOAD
    assert (result.signal, result.confidence) == ("config", 1.0)


@pytest.mark.parametrize("model", ["tiny:gpt2", "tiny:llava"])
def test_other_models_are_left_to_other_pipelines(plugins, model):
    result = classify(model, plugins).classification
    assert result.plugin != "audio" and result.pipeline != "audio"


@pytest.mark.parametrize("tasks, subfamily", [
    ({"AUDIO_CLASSIFICATION", "SPEECH_SEQ_2_SEQ", "CAUSAL_LM"}, "speech_recognition"),
    ({"AUDIO_XVECTOR", "AUDIO_FRAME_CLASSIFICATION"}, "audio_classifier"),
    ({"TEXT_TO_WAVEFORM"}, "speech_synthesis"), ({"RNNT"}, "speech_recognition"),
    ({"CAUSAL_LM", "MASKED_LM"}, None)])
def test_subfamily_table(tasks, subfamily):
    assert subfamily_of(tasks) == subfamily


def test_waveforms_are_seeded_tones_that_differ_per_row():
    first, second = waveforms(3, 8000, 16000), waveforms(3, 8000, 16000)
    assert [w.dtype.name for w in first] == ["float32"] * 3
    assert all((a == b).all() for a, b in zip(first, second, strict=True))
    assert not (first[0] == first[1]).all()
    assert all(0.05 < abs(w).max() < 1.0 for w in first)


def test_whisper_inputs_forward_and_shapes(whisper):
    workload, model = whisper
    config = model.config
    inputs = workload.make_inputs(2, 6)
    encoder = model.get_encoder()
    mel_frames = config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
    assert tuple(inputs["input_features"].shape) == (2, config.num_mel_bins, mel_frames)
    assert not inputs["input_features"][0].equal(inputs["input_features"][1])
    assert tuple(inputs["decoder_input_ids"].shape) == (2, 6)
    assert inputs["decoder_input_ids"][:, 0].tolist() == [config.decoder_start_token_id] * 2
    again = workload.make_inputs(2, 6)
    assert all(again[name].equal(value) for name, value in inputs.items())
    outputs = workload.forward(model, inputs)
    assert tuple(outputs["logits"].shape) == (2, 6, config.vocab_size)
    assert tuple(outputs["encoder_last_hidden_state"].shape) == (
        2, config.max_source_positions, config.d_model)
    expected = workload.expected_shapes(inputs)
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    assert set(expected) == {"logits", "encoder_last_hidden_state"}


@pytest.mark.parametrize("new_tokens", [1, 5])
def test_whisper_greedy_generate_adds_exactly_n_tokens(whisper, new_tokens):
    workload, model = whisper
    inputs = workload.make_inputs(2, 4)
    tokens = workload.generate(model, inputs, new_tokens)
    # Whisper's generate returns only the tokens it added after its decoder prompt
    assert tuple(tokens.shape) == (2, new_tokens)
    assert workload.generated_length(inputs, new_tokens) == new_tokens


@pytest.mark.parametrize("seq_len", [16, 50])
def test_wav2vec2_ctc_frames_follow_the_conv_feature_encoder(wav2vec2, seq_len):
    workload, model = wav2vec2
    inputs = workload.make_inputs(2, seq_len)
    samples = inputs["input_values"].shape[1]
    frames = int(model._get_feat_extract_output_lengths(samples))
    assert frames == seq_len  # seq_len counts encoder frames for conv feature encoders
    assert int(model._get_feat_extract_output_lengths(samples - 1)) == seq_len - 1
    outputs = workload.forward(model, inputs)
    assert tuple(outputs["logits"].shape) == (2, frames, model.config.vocab_size)
    assert workload.expected_shapes(inputs) == {"logits": (2, frames, model.config.vocab_size)}
    ids = workload.ctc_greedy_ids(outputs["logits"])
    assert tuple(ids.shape) == (2, frames)  # one id per frame
    assert workload.ctc_collapse([5, 5, 0, 5, 7, 7, 0]) == [5, 5, 7]  # pad 0 is the blank


def test_a_checkpoint_folder_loads_with_its_own_feature_extractor(plugins, whisper, tmp_path):
    from transformers import WhisperFeatureExtractor

    workload, model = whisper
    model.save_pretrained(tmp_path)
    WhisperFeatureExtractor(feature_size=model.config.num_mel_bins).save_pretrained(tmp_path)
    result = classify(str(tmp_path), plugins).classification
    assert (result.family, result.subfamily, result.pipeline) == (
        "audio", "speech_recognition", "audio")
    assert result.signal == "local" and result.model_class == "WhisperForConditionalGeneration"
    folder = load_workload(str(tmp_path), result)
    assert isinstance(folder.feature_extractor, WhisperFeatureExtractor)
    inputs = folder.make_inputs(1, 3)
    assert all(workload.make_inputs(1, 3)[name].equal(value) for name, value in inputs.items())
    loaded = folder.forward(folder.load_model(), inputs)["logits"]
    assert torch.allclose(loaded, workload.forward(model, inputs)["logits"], atol=1e-6)


@pytest.mark.slow
def test_generated_tests_pass_for_whisper_and_wav2vec2(tmp_path):
    out = tmp_path / "generated"
    # 3 shared checks each, plus generate (whisper) and the CTC decode (wav2vec2)
    run = generate_and_run(["tiny:whisper", "tiny:wav2vec2"], out, expect_passed=8)
    assert "skipped" not in run.stdout
    whisper = (out / "test_hf_tiny_whisper_cpu.py").read_text(encoding="utf-8")
    wav2vec2 = (out / "test_hf_tiny_wav2vec2_cpu.py").read_text(encoding="utf-8")
    assert "def test_generate" in whisper and "def test_ctc_greedy_decode" not in whisper
    assert "def test_ctc_greedy_decode" in wav2vec2 and "def test_generate" not in wav2vec2


@pytest.mark.slow
def test_benchmark_records_a_success(tmp_path):
    from hwaccel.kit.tiny import tiny_config

    row = benchmark_one("tiny:whisper", tmp_path / "audio.duckdb", "--batch-size", "2",
                        "--seq-len", "8", "--iterations", "3", "--min-seconds", "0.01",
                        "--warmup", "1")
    assert (row["family"], row["pipeline"]) == ("audio", "audio")
    config = tiny_config("whisper")
    assert json.loads(row["output_shape"]) == {
        "logits": [2, 8, config.vocab_size],
        "encoder_last_hidden_state": [2, config.max_source_positions, config.d_model]}



def run_tiny(plugins, model_type, batch_size=2, seq_len=8):
    """Build ``tiny:<model_type>``, make its inputs and run it; check the shapes the workload
    expects (those it can tell from the config) and that every output keeps the batch size."""
    workload, model = workload_and_model(f"tiny:{model_type}", plugins)
    inputs = workload.make_inputs(batch_size, seq_len)
    outputs = workload.forward(model, inputs)
    expected = workload.expected_shapes(inputs)
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    assert all(value.shape[0] == batch_size for value in outputs.values())
    return workload, model.config, inputs, outputs


def test_a_tdt_transducer_starts_its_prediction_network_from_the_blank_label(plugins):
    workload, config, inputs, outputs = run_tiny(plugins, "parakeet_tdt")
    assert inputs["decoder_input_ids"].tolist() == [[config.blank_token_id]] * 2
    assert inputs["input_features"].shape[-1] == config.encoder_config.num_mel_bins
    assert workload.input_source == "processor-class"
    frames = outputs["last_hidden_state"].shape[1]
    # the joint network scores every token and every duration at every encoder frame
    assert tuple(outputs["logits"].shape) == (
        2, frames, config.vocab_size + len(config.durations))


def test_musicgen_reads_text_of_its_encoder_and_one_decoder_row_per_codebook(plugins):
    _, config, inputs, outputs = run_tiny(plugins, "musicgen")
    codebooks = config.decoder.num_codebooks
    assert tuple(inputs["decoder_input_ids"].shape) == (2 * codebooks, 8)
    assert int(inputs["input_ids"].max()) < config.text_encoder.vocab_size
    assert tuple(outputs["logits"].shape) == (2, codebooks, 8, config.decoder.vocab_size)


def test_dia_takes_its_audio_channels_in_the_last_dimension(plugins):
    _, config, inputs, outputs = run_tiny(plugins, "dia")
    channels = config.decoder_config.num_channels
    assert tuple(inputs["decoder_input_ids"].shape) == (2, 8, channels)
    assert int(inputs["input_ids"].max()) < config.encoder_config.vocab_size
    assert tuple(outputs["logits"].shape) == (2, channels, 8, config.decoder_config.vocab_size)


def test_a_speech_encoder_decoder_takes_what_its_encoder_takes(plugins):
    from transformers import AutoModel

    workload, config, inputs, outputs = run_tiny(plugins, "speech-encoder-decoder")
    encoder_input = AutoModel.from_config(config.encoder).main_input_name
    assert workload.main_input == encoder_input and inputs[encoder_input].dim() == 2
    assert tuple(outputs["logits"].shape) == (2, 8, config.decoder.vocab_size)


def test_wav2vec2_bert_gets_the_features_its_config_documents(plugins):
    workload, config, inputs, outputs = run_tiny(plugins, "wav2vec2-bert")
    # transformers maps the type to a raw-sample extractor; its config documents the
    # SeamlessM4T extractor, whose stacked mel frames the feature projection takes
    assert type(workload.feature_extractor).__name__ == "SeamlessM4TFeatureExtractor"
    features = inputs["input_features"]
    assert features.shape[-1] == config.feature_projection_input_dim
    assert tuple(outputs["logits"].shape) == (2, features.shape[1], config.vocab_size)


def test_canary_mel_bins_come_from_its_encoder_config(plugins):
    _, config, inputs, outputs = run_tiny(plugins, "canary")
    assert inputs["input_features"].shape[-1] == config.encoder_config.num_mel_bins
    assert inputs["decoder_input_ids"][:, 0].tolist() == [config.decoder_start_token_id] * 2
    assert tuple(outputs["logits"].shape) == (2, 8, config.decoder_config.vocab_size)


def test_a_class_without_forward_fails_with_a_clear_reason(plugins):
    from transformers import BarkModel

    from hwaccel.errors import HwaccelError

    workload = load_workload("tiny:bark", classify("tiny:bark", plugins).classification)
    assert "forward" not in vars(BarkModel)
    with pytest.raises(HwaccelError, match="BarkModel defines no forward"):
        workload.make_inputs(1, 4)


def test_a_bare_whisper_model_checkpoint_without_processor_files_runs(plugins, tmp_path):
    from transformers import WhisperModel

    from hwaccel.kit.tiny import tiny_config

    config = tiny_config("whisper")
    WhisperModel(config).save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json",
                                                               "model.safetensors"]
    workload = load_workload(str(tmp_path), classify(str(tmp_path), plugins).classification)
    assert workload.model_class is WhisperModel
    inputs = workload.make_inputs(2, 5)
    assert inputs["input_features"].shape[1] == config.num_mel_bins
    assert inputs["decoder_input_ids"][:, 0].tolist() == [config.decoder_start_token_id] * 2
    outputs = workload.forward(workload.load_model(), inputs)
    assert tuple(outputs["last_hidden_state"].shape) == (2, 5, config.d_model)
    expected = workload.expected_shapes(inputs)
    assert {name: tuple(outputs[name].shape) for name in expected} == expected
    assert not workload.generative  # a bare model has no LM head to generate with

