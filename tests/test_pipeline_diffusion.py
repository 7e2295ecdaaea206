"""The diffusion pipeline: claims diffusers models, runs short denoising loops, tests, benches.

Expected labels are copied from shared/TAXONOMY.md ("Outside transformers": diffusers models
and pipelines are family vision, subfamily diffusion, pipeline diffusion).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ONE_THREAD, benchmark_one, generate_and_run
from hwaccel.errors import ModelReferenceError
from hwaccel.kit.claims import SIGNAL_CONFIDENCE
from hwaccel.kit.workloads import load_workload
from hwaccel.models.classify import classify

DIFFUSION = ("vision", "diffusion", "diffusion")
WORKLOAD = "hwaccel_pipeline_diffusion.workload:DiffusionWorkload"
TINY = ["tiny:UNet2DConditionModel", "tiny:DDPMPipeline", "tiny:StableDiffusionPipeline"]
FAST = ["--iterations", "3", "--min-seconds", "0.05", "--warmup", "1"]


def _labels(classification):
    return classification.family, classification.subfamily, classification.pipeline


@pytest.fixture
def index_folder(tmp_path):
    """A folder holding only a diffusers model_index.json."""
    folder = tmp_path / "sd"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1"}))
    return folder


@pytest.mark.parametrize("spec, model_class, hint, signal", [
    ("tiny:UNet2DConditionModel", "UNet2DConditionModel", None, "config"),
    ("tiny:DDPMPipeline", "DDPMPipeline", None, "config"),
    ("tiny:StableDiffusionPipeline", "StableDiffusionPipeline", None, "config"),
    ("acme/house-model", "UNet2DConditionModel", "UNet2DConditionModel", "class"),
    ("acme/house-model", "StableDiffusionPipeline", "StableDiffusionPipeline", "class"),
    ("stabilityai/stable-diffusion-xl-base-1.0", None, None, "name"),
    ("black-forest-labs/FLUX.1-schnell", None, None, "name"),
    ("google/ddpm-cifar10-32", None, None, "name"),
    ("DeepFloyd/IF-I-XL-v1.0", None, None, "name"),
    ("SimianLuo/LCM_Dreamshaper_v7", None, None, "name"),
])
def test_claims_diffusers_models(plugins, spec, model_class, hint, signal):
    result = classify(spec, plugins, model_class=hint).classification
    assert _labels(result) == DIFFUSION
    assert result.plugin == "diffusion" and result.workload == WORKLOAD
    assert result.signal == signal
    assert result.confidence == SIGNAL_CONFIDENCE[signal]
    assert result.model_class == model_class and result.model_type is None


def test_claims_a_folder_with_only_model_index_json(plugins, index_folder):
    result = classify(str(index_folder), plugins).classification
    assert _labels(result) == DIFFUSION
    assert result.plugin == "diffusion" and result.workload == WORKLOAD
    assert (result.signal, result.confidence) == ("local", 1.0)
    assert result.model_class == "StableDiffusionPipeline"


@pytest.mark.parametrize("spec, hint", [
    ("tiny:FooBarPipeline", None),             # not a class of the installed diffusers
    ("tiny:ModelMixin", None),                 # a base class, not a model
    ("acme/house-model", "NotADiffusersModel"),
    ("acme/house-model", None),
])
def test_does_not_claim_other_names(plugins, spec, hint):
    result = classify(spec, plugins, model_class=hint).classification
    assert result.plugin != "diffusion" and result.pipeline != "diffusion"


def test_a_transformers_config_outranks_a_diffusers_class_hint(plugins, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert",
                                                      "architectures": ["BertModel"]}))
    result = classify(str(tmp_path), plugins, model_class="UNet2DConditionModel").classification
    assert (result.family, result.pipeline) == ("embedding", "text")


def test_classification_imports_neither_diffusers_nor_torch(tmp_path):
    probe = """
import sys
from hwaccel.models.classify import classify
from hwaccel.plugins import load
result = classify("tiny:DDPMPipeline", load(strict=True)).classification
print(result.pipeline, [m for m in ("diffusers", "torch") if m in sys.modules])
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["diffusion", "[]"], proc.stderr[-2000:]


def test_class_index_reads_import_structure_and_caches_it():
    from hwaccel.kit import paths
    from hwaccel_pipeline_diffusion import classes

    source = """
_import_structure = {"models": [], "pipelines": ["ImagePipelineOutput"]}
_import_structure["models"].extend(["UNet2DModel", "ModelMixin", "ContextParallelConfig"])
_import_structure["pipelines"].append("DDPMPipeline")
_import_structure["pipelines"].extend(["StableDiffusionMixin", "AutoPipelineBlocks"])
"""
    structure = classes.parse_import_structure(source)
    assert structure["models"] == ["UNet2DModel", "ModelMixin", "ContextParallelConfig"]
    assert structure["pipelines"][-1] == "AutoPipelineBlocks"
    installed = classes.installed()
    assert {"UNet2DConditionModel", "UNet2DModel", "AutoencoderKL"} <= installed.models
    assert {"DDPMPipeline", "StableDiffusionPipeline", "FluxPipeline"} <= installed.pipelines
    assert not {"ModelMixin", "ImagePipelineOutput", "StableDiffusionMixin"} & (
        installed.models | installed.pipelines)
    cache = paths.cache_dir() / f"diffusers-classes-{installed.version}.json"
    assert "DDPMPipeline" in json.loads(cache.read_text())["pipelines"]


def test_without_diffusers_no_class_is_known(monkeypatch):
    from hwaccel_pipeline_diffusion import classes

    monkeypatch.setattr(classes, "diffusers_version", lambda: None)
    classes.installed.cache_clear()
    try:
        absent = classes.installed()
    finally:
        classes.installed.cache_clear()
    assert absent.kind_of("UNet2DConditionModel") is None and not absent.pipelines


def _run(workload, batch=2, seq_len=5):
    model = workload.load_model()
    inputs = workload.make_inputs(batch, seq_len)
    return model, inputs, workload.forward(model, inputs)


# model -> (output name, its expected shape at batch 2 from the tiny configs in tiny.py)
TINY_OUTPUTS = {
    "tiny:UNet2DConditionModel": ("latents", (2, 4, 8, 8)),
    "tiny:UNet2DModel": ("latents", (2, 3, 16, 16)),
    "tiny:DDPMPipeline": ("images", (2, 3, 16, 16)),
    "tiny:StableDiffusionPipeline": ("images", (2, 3, 16, 16)),
}


@pytest.mark.parametrize("spec", list(TINY_OUTPUTS))
def test_tiny_workloads_denoise_for_the_configured_steps(plugins, one_thread, spec):
    import torch

    from hwaccel_pipeline_diffusion.workload import NUM_INFERENCE_STEPS

    workload = load_workload(spec, classify(spec, plugins).classification)
    model, inputs, outputs = _run(workload)
    name, shape = TINY_OUTPUTS[spec]
    assert workload.output_name == name
    assert workload.expected_shapes(inputs)[name] == shape
    assert {k: tuple(v.shape) for k, v in outputs.items()} == workload.expected_shapes(inputs)
    assert all(torch.isfinite(v).all() for v in outputs.values())
    noise = workload.starting_noise(inputs)
    assert noise.shape[0] == 2
    assert outputs[name].shape != noise.shape or not torch.allclose(outputs[name], noise)
    assert workload.count_steps(model, inputs) == (NUM_INFERENCE_STEPS, NUM_INFERENCE_STEPS)
    again = workload.forward(workload.load_model(), inputs)  # a second build, same weights
    assert all(torch.equal(outputs[k], again[k]) for k in outputs)


def test_steps_are_counted_on_a_model_that_is_no_torch_module(plugins, one_thread):
    """A converted graph (the web or QNN backend's model) is only callable: no hooks."""
    from hwaccel_pipeline_diffusion.workload import NUM_INFERENCE_STEPS

    spec = "tiny:UNet2DConditionModel"
    workload = load_workload(spec, classify(spec, plugins).classification)
    module = workload.load_model()

    class Graph:
        config = module.config

        def __call__(self, *args, **kwargs):
            return module(*args, **kwargs)

    inputs = workload.make_inputs(2, 8)
    assert workload.count_steps(Graph(), inputs) == (NUM_INFERENCE_STEPS, NUM_INFERENCE_STEPS)


def test_conditional_unet_inputs_follow_the_config_and_seq_len(plugins):
    spec = "tiny:UNet2DConditionModel"
    workload = load_workload(spec, classify(spec, plugins).classification)
    inputs = workload.make_inputs(3, 7)
    unet = workload.unet_config
    assert tuple(inputs["latents"].shape) == (3, unet["in_channels"], unet["sample_size"],
                                              unet["sample_size"])
    assert tuple(inputs["encoder_hidden_states"].shape) == (3, 7, unet["cross_attention_dim"])


@pytest.mark.parametrize("spec", ["tiny:UNet2DConditionModel", "tiny:DDPMPipeline"])
def test_saved_folders_load_and_match_the_tiny_build(plugins, one_thread, tmp_path, spec):
    import torch

    tiny = load_workload(spec, classify(spec, plugins).classification)
    model, inputs, expected = _run(tiny)
    model.save_pretrained(tmp_path / "saved")
    result = classify(str(tmp_path / "saved"), plugins).classification
    assert _labels(result) == DIFFUSION and result.signal == "local"
    folder = load_workload(str(tmp_path / "saved"), result)
    _, folder_inputs, outputs = _run(folder)
    assert folder.expected_shapes(folder_inputs) == tiny.expected_shapes(inputs)
    assert all(torch.equal(outputs[k], expected[k]) for k in expected)


def test_a_folder_without_weights_is_a_clear_error(plugins, index_folder):
    workload = load_workload(str(index_folder), classify(str(index_folder),
                                                         plugins).classification)
    with pytest.raises(ModelReferenceError, match="not a complete diffusers pipeline: its "
                                                  "model_index.json names no components"):
        workload.prepare()
    index = json.loads((index_folder / "model_index.json").read_text())
    (index_folder / "model_index.json").write_text(json.dumps(
        {**index, "unet": ["diffusers", "UNet2DConditionModel"],
         "safety_checker": [None, None]}))
    workload = load_workload(str(index_folder))
    with pytest.raises(ModelReferenceError, match="names unet but the folder lacks unet$"):
        workload.load_model()


def test_a_diffusers_class_without_a_tiny_build_is_claimed_but_not_built(plugins):
    from hwaccel.errors import HwaccelError

    result = classify("tiny:AutoencoderKL", plugins).classification
    assert _labels(result) == DIFFUSION and result.signal == "config"
    with pytest.raises(HwaccelError, match="no tiny build of diffusers class AutoencoderKL"):
        load_workload("tiny:AutoencoderKL", result).prepare()


@pytest.mark.slow
def test_generated_tests_pass_for_tiny_models(tmp_path):
    # 3 shared checks + output-vs-noise + step count, per model
    generate_and_run(TINY, tmp_path / "generated", env=ONE_THREAD, expect_passed=5 * len(TINY))


@pytest.mark.slow
def test_benchmark_records_a_success(tmp_path):
    row = benchmark_one("tiny:DDPMPipeline", tmp_path / "bench.duckdb", "--batch-size", "2",
                        "--threads", "1", *FAST)
    assert row["model_id"] == "tiny:DDPMPipeline"
    assert (row["family"], row["pipeline"]) == ("vision", "diffusion")
    assert json.loads(row["output_shape"]) == {"images": [2, 3, 16, 16]}
    assert row["iterations"] >= 3 and 0 < row["p50_ms"] <= row["p99_ms"]

