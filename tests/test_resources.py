"""Resource estimates: runtime baselines measured by real jobs, the history, fits and batches.

The host CPU runs real calibration jobs here. GPUs are absent on this machine, so their
estimates are tested from detection records and history rows shaped as the cuda backend
and the matrix write them.
"""

from __future__ import annotations

import json

import pytest

from conftest import cpu_record, cuda_records, detection_of, record_result, run_cli
from hwaccel.estimates.calibration import cache_file
from hwaccel.estimates.resources import Estimator

MIB = 2**20
TOO_BIG = "meta-llama/Llama-2-7b-hf"  # 6.7 B parameters: 25 GiB in fp32, 12 GiB free here


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """A cache folder of this module's own, so that its calibrations are measured here."""
    folder = tmp_path_factory.mktemp("calibration-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HWACCEL_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def measured(plugins, fresh_cache):
    """An estimator that measured the host CPU's runtime baselines, and what it measured."""
    calls: list[tuple[str, str]] = []
    cpu = cpu_record()
    estimator = Estimator(plugins, detection_of(cpu),
                          on_measure=lambda model, device: calls.append((model, device)))
    estimates = estimator.estimate_all(["tiny:bert", "tiny:gpt2"], [cpu])
    return estimator, estimates, calls


def test_runtime_baselines_are_measured_by_jobs_once_then_read_from_the_cache(plugins,
                                                                             measured):
    estimator, (bert, gpt2), calls = measured
    assert sorted(calls) == [("minilm", "cpu"), ("tiny:gpt2", "cpu")]
    entries = json.loads(cache_file().read_text())["entries"]
    assert len(entries) == 2 and {e["model"] for e in entries.values()} == {"minilm",
                                                                           "tiny:gpt2"}
    again: list[tuple[str, str]] = []
    cpu = cpu_record()
    reread = Estimator(plugins, detection_of(cpu), measure=False,
                       on_measure=lambda m, d: again.append((m, d))).estimate("tiny:bert", cpu)
    assert again == [] and reread.runtime_mb == bert.runtime_mb
    calibration = estimator.calibrator.calibrate(cpu, "text")
    assert {m.model for m in calibration.measurements} == {"tiny:gpt2", "minilm"}
    assert all(m.source.startswith("measured ") for m in calibration.measurements)
    # the runtime (torch, transformers, the first call's workspaces) dwarfs a tiny model
    assert 100 < bert.runtime_mb < min(m.peak_mb for m in calibration.measurements)
    assert bert.inference_peak_mb > bert.runtime_mb and bert.source == "estimate"
    assert bert.fits is True and bert.max_batch_size > 1000 and bert.cpu_cores == 2


def test_generative_models_add_their_kv_cache_in_the_generation_phase(measured):
    _, (bert, gpt2), _ = measured
    assert bert.generation_peak_mb is None and bert.kv_cache_mb == 0
    assert gpt2.kv_cache_mb > 0
    assert gpt2.generation_peak_mb == pytest.approx(gpt2.inference_peak_mb + gpt2.kv_cache_mb)
    assert gpt2.peak_mb == max(gpt2.load_peak_mb, gpt2.generation_peak_mb)


def test_without_a_measured_baseline_the_estimate_says_it_cannot_tell(plugins, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path))
    cpu = cpu_record()
    estimate = Estimator(plugins, detection_of(cpu), measure=False).estimate("tiny:bert", cpu)
    assert estimate.runtime_mb is None and estimate.inference_peak_mb is None
    assert estimate.fits is None and estimate.reason == ("runtime baseline not measured on "
                                                         "this device")
    assert any("measuring was not allowed" in line for line in estimate.basis)
    huge = Estimator(plugins, detection_of(cpu), measure=False).estimate(TOO_BIG, cpu)
    assert huge.fits is False and huge.reason.startswith("the weights alone need")


def test_the_history_calibrates_and_its_measured_peak_replaces_the_estimate(plugins, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "history.duckdb"
    cpu = cpu_record()
    record_result(db, plugins, "tiny:gpt2", cpu, peak_mb=310.0,
                  details={"load_peak_rss_mb": 300.0})
    record_result(db, plugins, "minilm", cpu, peak_mb=395.0,
                  details={"load_peak_rss_mb": 380.0})
    record_result(db, plugins, "tiny:bert", cpu, peak_mb=333.0, run_id="bert-run")
    other_cpu = cpu_record(name="another CPU")  # another machine's rows calibrate nothing
    record_result(db, plugins, "tiny:gpt2", other_cpu, peak_mb=9999.0)
    estimator = Estimator(plugins, detection_of(cpu), db_path=db, measure=False)
    one = estimator.estimate("tiny:bert", cpu)
    calibration = estimator.calibrator.calibrate(cpu, "text")
    assert {m.peak_mb for m in calibration.measurements} == {310.0, 395.0}
    assert all(m.source.startswith("history run run-1") for m in calibration.measurements)
    assert one.source == "history" and one.inference_peak_mb == 333.0
    assert any("measured peak 333 MiB in the history (run bert-run" in b for b in one.basis)
    four = estimator.estimate("tiny:bert", cpu, batch_size=4)
    footprint = estimator.footprint("tiny:bert")
    moved = (footprint.activation_bytes(4, "fp32") - footprint.activation_bytes(1, "fp32"))
    assert four.inference_peak_mb == pytest.approx(333.0 + moved / MIB)
    assert estimator.estimate("tiny:bert", cpu, precision="fp16").precision == "fp32"


def test_a_model_larger_than_the_free_memory_does_not_fit(plugins, measured):
    estimator, _, _ = measured
    cpu = cpu_record()
    huge = estimator.estimate(TOO_BIG, cpu)
    assert huge.fits is False and huge.max_batch_size == 0
    assert huge.reason.startswith(f"needs {huge.peak_mb:,.0f} MiB, 12,288 MiB free")
    assert huge.parameters == 6_738_415_616
    assert any("not on this machine" in line and "to download" in line for line in huge.basis)


def test_gpu_estimates_use_the_devices_measured_baseline_and_its_free_memory(plugins,
                                                                            tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "history.duckdb"
    roomy, cramped = cuda_records([8000, 300])
    for gpu in (roomy, cramped):
        record_result(db, plugins, "tiny:gpt2", gpu, peak_mb=900.0, device_peak_mb=40.0)
        record_result(db, plugins, "minilm", gpu, peak_mb=1000.0, device_peak_mb=130.0)
    estimator = Estimator(plugins, detection_of(cpu_record(), roomy, cramped), db_path=db,
                          measure=False)
    model = "openai-community/gpt2"  # 124 M parameters, from the text catalogue
    fp32 = estimator.estimate(model, roomy)
    footprint = estimator.footprint(model)
    small = estimator.footprint("tiny:gpt2")
    baseline = 40.0 - (small.weight_bytes("fp32") + small.activation_bytes(1, "fp32")) / MIB
    expected = baseline + (footprint.weight_bytes("fp32") + footprint.activation_bytes(1, "fp32")
                           + footprint.kv_cache_bytes(1, "fp32")) / MIB
    assert fp32.device_peak_mb == pytest.approx(expected)
    assert fp32.fits is True and fp32.cpu_cores == 1 and fp32.device == "cuda:0"
    half = estimator.estimate(model, roomy, precision="fp16")
    assert half.precision == "fp16" and half.weights_mb == pytest.approx(fp32.weights_mb / 2,
                                                                         rel=1e-3)
    assert half.device_peak_mb < fp32.device_peak_mb
    tight = estimator.estimate(model, cramped)
    assert tight.fits is False and "of device memory, 300 MiB free" in tight.reason
    assert tight.max_batch_size == 0


def test_disk_counts_the_checkpoint_and_the_converted_copy_a_backend_keeps(plugins, measured):
    estimator, _, _ = measured
    converting = cpu_record(backend="openvino", device="CPU", converted_weights="fp32",
                            plugin="openvino")
    plain = estimator._disk("minilm", estimator.footprint("minilm"), cpu_record())
    converted = estimator._disk("minilm", estimator.footprint("minilm"), converting)
    checkpoint = estimator.footprint("minilm").checkpoint.bytes / MIB
    assert plain[0] == pytest.approx(checkpoint)
    assert converted[0] == pytest.approx(checkpoint + estimator.footprint("minilm")
                                         .weight_bytes("fp32") / MIB)
    assert "openvino keeps a converted copy in fp32" in converted[1]
    exporting = cpu_record(backend="web", device="wasm", converted_weights="fp32",
                           converted_unties_weights=True, plugin="web")
    gpt2 = estimator.footprint("tiny:gpt2")
    exported = estimator._disk("tiny:gpt2", gpt2, exporting)
    assert exported[0] == pytest.approx(gpt2.weight_bytes("fp32", untied=True) / MIB)
    assert gpt2.weight_bytes("fp32", untied=True) > gpt2.weight_bytes("fp32")


def test_resources_cli_prints_phases_as_json_and_explains(tmp_path):
    db = tmp_path / "db.duckdb"
    proc = run_cli("resources", "tiny:bert", "minilm", "--backend", "cpu", "--db", str(db),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [(e["model"], e["device"]) for e in data["estimates"]] == [("tiny:bert", "cpu"),
                                                                      ("minilm", "cpu")]
    for estimate in data["estimates"]:
        assert set(estimate["phases"]) == {"load", "inference", "generation"}
        assert estimate["fits"] is True and estimate["source"] == "estimate"
    assert data["footprints"]["minilm"]["checkpoint"]["source"] == "safetensors headers"
    text = run_cli("resources", "tiny:bert", "--backend", "cpu", "--db", str(db), "--explain")
    assert text.returncode == 0, text.stderr
    assert "BertForMaskedLM built on the meta device from its config" in text.stdout
    config = run_cli("resources", "tiny:bert", "minilm", "--backend", "cpu", "--db", str(db),
                     "--resource-config", "--json")
    assert config.returncode == 0, config.stderr
    pool = json.loads(config.stdout)
    assert set(pool["models"]) == {"tiny:bert", "minilm"}
    assert pool["resource_pool_config"]["low_memory_mode"] is False
    assert pool["resource_requirements"]["total_memory_mb"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["no/such-model-xyz"], "cannot estimate"),
    (["./missing-folder"], "no such model folder"),
    (["tiny:bert", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["tiny:bert", "--batch-size", "0"], "--batch-size and --seq-len must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_cli("resources", *args, "--no-measure")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hwaccel: error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr



def test_processes_a_backend_starts_beside_the_job_count_in_its_peak(plugins, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "history.duckdb"
    wasm = cpu_record(backend="web", device="wasm", plugin="web", converted_weights="fp32")
    for model, peak in (("tiny:gpt2", 310.0), ("minilm", 395.0), ("tiny:bert", 320.0)):
        record_result(db, plugins, model, wasm, peak_mb=peak,
                      details={"load_peak_rss_mb": peak - 10, "helper_peak_rss_mb": 700.0})
    estimator = Estimator(plugins, detection_of(cpu_record(), wasm), db_path=db,
                          measure=False)
    calibration = estimator.calibrator.calibrate(wasm, "text")
    assert {m.peak_mb for m in calibration.measurements} == {1010.0, 1095.0}
    estimate = estimator.estimate("tiny:bert", wasm)
    assert estimate.inference_peak_mb == 1020.0 and estimate.load_peak_mb == 1010.0
    assert estimate.runtime_mb > 900  # the browser is part of the web runtime
