"""Predecessor compatibility: the seeds' model names, report shapes, flags and constants."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import (
    cpu_record,
    detection_of,
    generate_and_run,
    hardware_rows,
    make_plugin_dist,
    pythonpath_env,
    record_result,
    run_cli,
    run_with_expected_shapes,
)
from hwaccel.compat.hardware_model_integration import HardwareAwareModelClassifier
from hwaccel.errors import ModelReferenceError, UsageError
from hwaccel.estimates.resources import Estimator
from hwaccel.models.catalogue import CatalogueEntry, find_entry


def _entry(model_id: str) -> CatalogueEntry:
    return CatalogueEntry(id=model_id, tasks=(), model_type="bert", architecture="BertModel")


def test_a_legacy_bare_name_resolves_to_the_one_catalogue_id_that_ends_in_it():
    entries = [_entry("google-bert/bert-base-uncased"), _entry("openai-community/gpt2")]
    assert find_entry(entries, "bert-base-uncased").id == "google-bert/bert-base-uncased"
    assert find_entry(entries, "GPT2").id == "openai-community/gpt2"
    assert find_entry(entries, "other-org/gpt2") is None  # a namespaced id matches exactly
    assert find_entry(entries, "base-uncased") is None  # the whole last component only


def test_a_bare_name_that_several_ids_end_in_is_refused_naming_them():
    entries = [_entry("org-a/tiny-model"), _entry("org-b/tiny-model")]
    with pytest.raises(ModelReferenceError, match="org-a/tiny-model, org-b/tiny-model"):
        find_entry(entries, "tiny-model")


@pytest.mark.parametrize(("legacy", "model_type"), [
    ("bert-base-uncased", "bert"), ("gpt2", "gpt2"), ("t5-small", "t5"),
    ("vit-base-patch16-224", "vit")])
def test_the_seeds_model_names_get_the_catalogues_config(plugins, tmp_path, legacy,
                                                         model_type):
    estimator = Estimator(plugins, detection_of(cpu_record()), db_path=tmp_path / "h.duckdb",
                          measure=False)
    ref = estimator.ref(legacy)
    assert ref.spec == legacy and ref.model_type == model_type
    assert "the hub's current id" in ref.evidence
    assert estimator.footprint(legacy).parameters > 1_000_000


@pytest.fixture
def pool_classifier(plugins, tmp_path):
    """A classifier on a CPU-only detection whose history measured tiny:gpt2 only."""
    cpu = cpu_record()
    db = tmp_path / "history.duckdb"
    record_result(db, plugins, "tiny:gpt2", cpu, peak_mb=300.0)
    estimator = Estimator(plugins, detection_of(cpu), db_path=db, measure=False)
    return HardwareAwareModelClassifier(estimator=estimator)


def test_a_model_whose_memory_is_unknown_is_reported_unknown_never_as_zero(pool_classifier):
    config = pool_classifier.get_optimal_resource_pool_config(
        ["tiny:gpt2", "no-such-org/no-such-model"])
    needs = config["resource_requirements"]
    assert needs["total_memory_mb"] is None and needs["max_memory_mb"] is None
    assert list(needs["unknown_models"]) == ["no-such-org/no-such-model"]
    assert needs["known_total_memory_mb"] >= 300.0  # tiny:gpt2's measured peak
    assert needs["known_max_memory_mb"] == 300.0
    assert config["models"]["no-such-org/no-such-model"]["requirements_known"] is False
    assert config["models"]["no-such-org/no-such-model"]["resident_mb"] is None
    assert config["resource_pool_config"]["low_memory_mode"] is None
    reason = config["resource_pool_config"]["reason"]
    assert "is unknown" in reason and "no-such-org/no-such-model" in reason
    assert " 0 MiB" not in reason


def test_only_unknown_models_give_no_total_at_all(pool_classifier):
    config = pool_classifier.get_optimal_resource_pool_config(["no-such-model-xyz"])
    needs = config["resource_requirements"]
    assert needs["total_memory_mb"] is None and needs["known_total_memory_mb"] is None
    assert "need 0" not in config["resource_pool_config"]["reason"]


def test_known_models_still_get_their_total(pool_classifier):
    config = pool_classifier.get_optimal_resource_pool_config(["tiny:gpt2"])
    needs = config["resource_requirements"]
    assert needs["total_memory_mb"] >= 300.0 and needs["unknown_models"] == {}
    assert config["resource_pool_config"]["low_memory_mode"] is False


# ---- generated files: --device, --all-hardware, --save ------------------------------------

CPU_LIKE_BACKENDS = '''
    from hwaccel import HardwareInfo, TemplatePart, hookimpl

    SNIPPETS = {
        "imports": "import torch",
        "availability": 'DEVICE = "cpu"\\n\\n\\ndef unavailable_reason():\\n    return None',
        "placement": ("def place_model(m):\\n    return m\\n\\n\\n"
                      "def place_inputs(i):\\n    return i"),
        "synchronize": "def synchronize():\\n    pass",
        "cleanup": "def release(m):\\n    pass",
        "tolerance": "ATOL = 1e-5\\nRTOL = 1e-4",
    }

    @hookimpl
    def hwaccel_detect():
        return [HardwareInfo(backend="acme", device="acme:0", name="Acme", available=True),
                HardwareInfo(backend="bare", device="bare:0", name="Bare", available=True)]

    @hookimpl
    def hwaccel_template(backend):
        if backend != "acme":
            return None
        return TemplatePart(owner="backend", name="acme", snippets=SNIPPETS)
'''


def test_device_names_a_backend_or_one_of_its_devices():
    from hwaccel.generating.generated_run import all_hardware, device_target
    from hwaccel.types import HardwareInfo

    web = [HardwareInfo(backend="web", device="webgpu", name="WebGPU", available=True),
           HardwareInfo(backend="web", device="webnn", name="WebNN", available=False,
                        reason="WebNN is not supported on this platform")]
    cuda = HardwareInfo(backend="cuda", device="cuda", name="NVIDIA", available=False,
                        reason="no CUDA")
    report = detection_of(cpu_record(), cuda, *web)
    assert device_target(report, "CPU").hardware.device == "cpu"
    assert device_target(report, "web").hardware.device == "webgpu"  # first available
    webnn = device_target(report, "webnn")
    assert (webnn.backend, webnn.skip_category) == ("web", "unavailable")
    assert "not supported on this platform" in webnn.skip_reason
    assert device_target(report, "cuda").skip_reason == "cuda: absent — no CUDA"
    with pytest.raises(UsageError, match="unknown device 'tpu': detection knows cpu, cuda"):
        device_target(report, "tpu")
    targets = all_hardware(report)
    assert [(t.backend, t.skip_category) for t in targets] == [
        ("cpu", None), ("cuda", "unavailable"), ("web", None)]


@pytest.fixture(scope="module")
def generated_bert(tmp_path_factory):
    """tiny:bert's generated CPU test file, as ``hwaccel generate`` writes it."""
    out = tmp_path_factory.mktemp("generated")
    proc = run_cli("generate", "tiny:bert", "--backend", "cpu", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("test_*.py")
    return path


def _run_file(path, *args, env=None):
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_a_generated_file_runs_on_the_device_it_is_told(generated_bert):
    proc = _run_file(generated_bert, "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^cpu: passed \(3 passed, ", proc.stdout, re.MULTILINE), proc.stdout


def test_an_unknown_device_is_one_line_and_exit_2(generated_bert):
    proc = _run_file(generated_bert, "--device", "tpu")
    assert proc.returncode == 2
    assert proc.stderr.startswith("hwaccel: error: unknown device 'tpu'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_db_without_save_is_a_usage_error(generated_bert, tmp_path):
    proc = _run_file(generated_bert, "--db", str(tmp_path / "h.duckdb"))
    assert proc.returncode == 2 and proc.stderr.startswith("hwaccel: error: --db ")
    assert not (tmp_path / "h.duckdb").exists()


@pytest.mark.slow
def test_all_hardware_runs_each_detected_backend_with_snippets_and_saves(generated_bert,
                                                                         tmp_path):
    root = make_plugin_dist(tmp_path / "plugin", "hwaccel-test-acme",
                            {"acme": "hwaccel_test_acme"},
                            {"hwaccel_test_acme.py": CPU_LIKE_BACKENDS})
    db = tmp_path / "history.duckdb"
    env = {**pythonpath_env(root), "HWACCEL_DISABLE_PLUGINS": "openvino,qnn,web"}
    proc = _run_file(generated_bert, "--all-hardware", "--save", "--db", str(db), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert lines["cpu"].startswith("passed (3 passed")
    assert lines["acme"].startswith("passed (3 passed")  # rendered from acme's snippets
    assert lines["bare"].startswith("skipped: no test snippets for this model: ")
    assert lines["cuda"].startswith("skipped: cuda: absent — ")
    rows = {row["hardware"]: row for row in hardware_rows(db)}
    assert set(rows) == {"cpu", "acme", "bare", "cuda", "mps", "rocm"}
    assert {r["model_id"] for r in rows.values()} == {"tiny:bert"}
    assert {r["source"] for r in rows.values()} == {"generated-test"}
    assert rows["cpu"]["success"] and rows["cpu"]["test_status"] == "passed"
    assert rows["acme"]["success"] and rows["acme"]["device"] == "acme:0"
    assert (rows["bare"]["success"], rows["bare"]["error_category"]) == (False, "unsupported")
    assert (rows["cuda"]["success"], rows["cuda"]["error_category"]) == (False, "unavailable")
    assert len({r["run_id"] for r in rows.values()}) == 1


# ---- XCLIP and the other contrastive models listed only as base models --------------------

@pytest.mark.parametrize("model_type", ["xclip", "aimv2", "groupvit"])
def test_base_only_dual_encoders_are_vision_text(plugins, model_type):
    from hwaccel.models.classify import classify

    got = classify(f"tiny:{model_type}", plugins).classification
    assert (got.family, got.pipeline, got.subfamily) == ("multimodal", "vision-text",
                                                         "dual_encoder")
    assert got.plugin == "vision-text" and got.workload
    assert "contrastive dual encoder" in got.reason


@pytest.mark.parametrize("model_type", ["clap", "bridgetower"])
def test_base_only_types_without_text_and_visual_features_stay_unknown(plugins, model_type):
    from hwaccel.models.classify import classify

    got = classify(f"tiny:{model_type}", plugins).classification
    assert (got.family, got.pipeline) == ("unknown", None)


def test_xclip_runs_on_clips_of_frames(one_torch_thread):
    workload, inputs, outputs = run_with_expected_shapes("tiny:xclip")
    pixels = inputs["pixel_values"]
    assert pixels.dim() == 5 and pixels.shape[:2] == (2, workload.num_frames)
    assert tuple(outputs["logits_per_video"].shape) == (2, inputs["input_ids"].shape[0])


@pytest.mark.slow
def test_xclips_generated_test_passes(tmp_path):
    run = generate_and_run(["tiny:xclip"], tmp_path / "generated")
    assert re.search(r"(?<![0-9])5 passed", run.stdout), run.stdout[-2000:]
    assert "skipped" not in run.stdout


# ---- the predecessor's platform constants -----------------------------------------------

def test_the_platform_constants_name_backends_and_the_web_providers(plugins):
    from hwaccel import CPU, CUDA, MPS, OPENVINO, QNN, ROCM, WEBGPU, WEBNN
    from hwaccel.hardware.devices import select_device
    from hwaccel_web.detect import PROVIDERS

    backends = {p.name for p in plugins.loaded() if p.kind == "backend"}
    assert {CPU, CUDA, MPS, OPENVINO, QNN, ROCM} <= backends
    assert {WEBNN, WEBGPU} <= set(PROVIDERS)  # the devices the web backend detects
    choice = select_device(detection_of(cpu_record()), [CUDA, OPENVINO, CPU])
    assert choice.backend == CPU


def test_a_named_gpu_the_tests_cannot_target_is_refused_not_run_elsewhere(plugins, tmp_path):
    from pathlib import Path

    from conftest import cuda_records
    from hwaccel.generating.generated_run import GeneratedFile, _run_one, device_target
    from hwaccel.models.classify import classify

    report = detection_of(cpu_record(), *cuda_records([8000, 8000]))
    assert device_target(report, "cuda:0").chosen is False
    second = device_target(report, "cuda:1")
    assert second.chosen and second.hardware.device == "cuda:1"
    classification = classify("tiny:bert", plugins).classification
    file = GeneratedFile(Path("test_hf_tiny_bert_cpu.py"), "tiny:bert", "cpu",
                         classification.to_dict())
    with pytest.raises(UsageError, match="first visible device, not on 'cuda:1'"):
        _run_one(file, second, classification, plugins, tmp_path, None, 60.0)
