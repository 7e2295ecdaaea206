"""Footprints: parameters on the meta device, checkpoints, KV caches and states, activations.

Each figure is checked against the real thing built another way: parameters against the
model the workload really loads, checkpoint tensors against safetensors' own loader, KV
caches and recurrent states against the cache a real forward pass with ``use_cache=True``
returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hwaccel.errors import ModelReferenceError
from hwaccel.estimates.footprint import (
    checkpoint_of,
    count_tensors,
    read_safetensors_header,
)


@pytest.fixture(scope="module")
def estimator(plugins):
    from conftest import cpu_record, detection_of
    from hwaccel.estimates.resources import Estimator

    return Estimator(plugins, detection_of(cpu_record()), measure=False)


def _cache_bytes(value: Any, seen: dict[int, int]) -> int:
    """Bytes of every distinct tensor reachable from a returned cache object, but for
    zero-dimensional ones (position counters: bookkeeping, not state of the sequence)."""
    import torch

    if torch.is_tensor(value):
        if value.dim() > 0:
            seen.setdefault(id(value), value.numel() * value.element_size())
    elif isinstance(value, (list, tuple)):
        for item in value:
            _cache_bytes(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _cache_bytes(item, seen)
    elif hasattr(value, "__dict__"):
        for item in vars(value).values():
            _cache_bytes(item, seen)
    return sum(seen.values())


def _real_cache(model: Any, inputs: dict[str, Any]) -> int:
    import torch

    with torch.inference_mode():
        outputs = model(**inputs, use_cache=True)
    cache = next(outputs[k] for k in ("past_key_values", "cache_params")
                 if outputs.get(k) is not None)
    return _cache_bytes(cache, {})


@pytest.mark.parametrize("model", ["tiny:bert", "tiny:gpt2", "tiny:t5", "tiny:whisper",
                                   "tiny:UNet2DConditionModel", "rag:minilm+tiny:gpt2"])
def test_parameters_on_the_meta_device_equal_the_loaded_model(estimator, model, one_thread):
    footprint = estimator.footprint(model)
    loaded = estimator.workload(model).load_model()
    modules = [loaded.retriever, loaded.generator] if model.startswith("rag:") else [loaded]
    floating = fixed = parameters = 0
    for module in modules:
        f, b, p = count_tensors(module)
        floating, fixed, parameters = floating + f, fixed + b, parameters + p
    assert footprint.parameters == parameters > 0
    assert footprint.weight_bytes("fp32") == 4 * floating + fixed
    assert footprint.weight_bytes("fp16") == 2 * floating + fixed
    assert all(p.device.type == "meta"
               for p in estimator.workload(model).skeleton().parameters())


def test_tied_weights_count_once(estimator):
    footprint = estimator.footprint("tiny:gpt2")
    skeleton = estimator.workload("tiny:gpt2").skeleton()
    listed = sum(p.numel() for _, p in skeleton.named_parameters(remove_duplicate=False))
    assert skeleton.get_output_embeddings().weight is skeleton.get_input_embeddings().weight
    assert footprint.parameters == listed - skeleton.get_input_embeddings().weight.numel()


@pytest.mark.parametrize(("model", "tied"), [("tiny:gpt2", True), ("tiny:t5", True),
                                             ("tiny:vit", False)])
def test_untied_weights_are_what_an_onnx_export_holds(estimator, model, tied, one_thread):
    """Counted untied, the weights match the float initializers of the model's real ONNX
    export (unused parameters aside); counted tied, they miss the head's copy."""
    import onnx
    from onnx import numpy_helper

    from hwaccel.kit.onnx_export import export_for

    workload = estimator.workload(model)
    exported = export_for(workload.load_model(), workload, 1, 8, model_ref=model)
    graph = onnx.load(str(exported.path)).graph
    held = sum(array.nbytes for array in map(numpy_helper.to_array, graph.initializer)
               if array.dtype.kind == "f")
    footprint = estimator.footprint(model)
    untied = footprint.weight_bytes("fp32", untied=True) - footprint.fixed_bytes
    shared = footprint.weight_bytes("fp32") - footprint.fixed_bytes
    assert abs(untied - held) / held < 0.02, (untied, held)
    assert (footprint.tied_float_elements > 0) is tied
    if tied:
        assert (held - shared) / held > 0.2


def test_a_model_without_embeddings_has_no_tied_weights(estimator):
    """transformers raises for ResNet's input embeddings; the footprint still comes."""
    footprint = estimator.footprint("tiny:resnet")
    assert footprint.tied_float_elements == 0 and footprint.lm_head is None
    assert footprint.weight_bytes("fp32", untied=True) == footprint.weight_bytes("fp32") > 0


def test_the_shipped_minilm_checkpoint_is_read_from_its_safetensors_header(estimator):
    from safetensors.torch import load_file

    footprint = estimator.footprint("minilm")
    folder = Path(estimator.ref("minilm").path)
    (weights,) = folder.glob("*.safetensors")
    tensors = load_file(weights)
    header = read_safetensors_header(weights)
    assert set(header) == set(tensors)
    checkpoint = footprint.checkpoint
    assert checkpoint.parameters == sum(t.numel() for t in tensors.values())
    assert checkpoint.bytes == sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert checkpoint.source == "safetensors headers" and "F32" in checkpoint.dtypes
    assert footprint.parameters == footprint.to_dict()["parameters"] > 22_000_000


def test_a_broken_safetensors_header_is_one_line_and_other_formats_count_by_size(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"x" * 100)
    checkpoint = checkpoint_of(tmp_path)
    assert (checkpoint.files, checkpoint.bytes, checkpoint.parameters) == (1, 100, None)
    assert checkpoint.source == "file sizes"
    # beside it a broken model.safetensors, the format transformers loads first
    (tmp_path / "model.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{not")
    with pytest.raises(ModelReferenceError, match="model.safetensors is not a valid "
                                                  "safetensors file") as caught:
        checkpoint_of(tmp_path)
    assert "\n" not in str(caught.value)
    assert checkpoint_of(tmp_path / "nothing") is None
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        read_safetensors_header(tmp_path / "model.safetensors")


@pytest.mark.parametrize("model", ["tiny:gpt2", "tiny:llama", "tiny:t5", "tiny:whisper",
                                   "tiny:bart", "tiny:qwen2_moe", "tiny:deepseek_v3",
                                   "tiny:jamba"])
def test_kv_cache_equals_the_cache_a_real_forward_returns(estimator, model, one_thread):
    footprint = estimator.footprint(model, 12)
    workload = estimator.workload(model)
    real = _real_cache(workload.load_model(), workload.make_inputs(2, 12))
    computed = footprint.kv_cache_bytes(2, "fp32") + footprint.state_bytes(2)
    assert computed == real > 0
    assert footprint.kv_cache_bytes(2, "fp16") == footprint.kv_cache_bytes(2, "fp32") // 2


def test_a_state_space_model_keeps_a_fixed_state_and_no_kv_cache(estimator, one_thread):
    short, long = estimator.footprint("tiny:mamba", 8), estimator.footprint("tiny:mamba", 64)
    workload = estimator.workload("tiny:mamba")
    real = workload.state_size(workload.load_model(), workload.make_inputs(1, 8))
    assert short.kv is None and short.kv_cache_bytes(1, "fp32") == 0
    assert short.state_bytes(1) == long.state_bytes(1) == real["recurrent"] > 0
    assert any("fixed size" in note for note in short.notes)


def test_sliding_window_layers_keep_only_the_window(estimator, tmp_path, one_thread):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from hwaccel.kit.tiny import tiny_config

    config = tiny_config("gemma2")
    config.sliding_window = 4
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["layer_types"][:2] == [
        "sliding_attention", "full_attention"]
    footprint = estimator.footprint(str(tmp_path), 16)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tmp_path)).eval()
    ids = torch.randint(0, config.vocab_size, (1, 16))
    real = _real_cache(model, {"input_ids": ids})
    assert footprint.kv.sliding_layers == footprint.kv.full_layers == 1
    # transformers may keep a few bytes of bookkeeping beside the tensors of the window
    assert footprint.kv_cache_bytes(1, "fp32") <= real <= footprint.kv_cache_bytes(1, "fp32") + 64
    assert footprint.kv_cache_bytes(1, "fp32") < footprint.kv.bytes(1, 16, 0, 4) * 2


def test_activations_grow_with_batch_and_sequence_and_include_the_logits(estimator):
    short, long = estimator.footprint("tiny:gpt2", 8), estimator.footprint("tiny:gpt2", 64)
    vocab = estimator.workload("tiny:gpt2").text_config.vocab_size
    assert short.activations.logits_elements == 8 * vocab
    assert long.activation_bytes(1, "fp32") > short.activation_bytes(1, "fp32")
    assert short.activation_bytes(3, "fp32") == 3 * short.activation_bytes(1, "fp32")
    assert any(s.startswith("logits: 8 tokens") for s in short.activations.streams)
    encoder = estimator.footprint("tiny:bert", 8)
    assert not any(s.startswith("logits") for s in estimator.footprint("minilm").activations
                   .streams)
    assert encoder.kv is None


def test_a_published_config_without_files_is_sized_from_the_catalogue(estimator):
    footprint = estimator.footprint("mistralai/Mixtral-8x7B-v0.1")
    assert footprint.parameters == 46_702_792_704
    assert footprint.checkpoint is None
    assert estimator.ref("mistralai/Mixtral-8x7B-v0.1").signal == "config"
    assert not estimator.ref("mistralai/Mixtral-8x7B-v0.1").loadable
