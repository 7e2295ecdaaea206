"""The openvino backend: real detection, conversion with an on-disk IR cache, a wrapper that
answers like the PyTorch model, greedy generation, generated tests and a benchmark.

OpenVINO and its CPU device are installed here, so detection and every conversion are real.
Absence and devices this machine lacks are tested by replacing OpenVINO at its import
boundary or its ``Core`` class, in these tests only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ONE_THREAD, generate_and_run, hardware_rows, run_cli, workload_and_model


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test converts into its own cache folder."""
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tolerance() -> tuple[float, float]:
    """ATOL and RTOL of the generated tests' tolerance snippet."""
    from hwaccel_openvino.template import SNIPPETS

    values: dict[str, float] = {}
    exec(SNIPPETS["tolerance"], values)  # noqa: S102 - our own snippet
    return values["ATOL"], values["RTOL"]


def assert_close(reference: dict, outputs: dict, tolerance: tuple[float, float]) -> None:
    """Same output names, and every output within the generated tests' bound."""
    atol, rtol = tolerance
    assert list(outputs) == list(reference)
    for name, expected in reference.items():
        got = outputs[name].float()
        assert got.shape == expected.shape, name
        assert not got.isnan().any(), name
        bound = atol + rtol * expected.abs().max().item()
        assert (got - expected.float()).abs().max().item() <= bound, name


# ---- detection ---------------------------------------------------------------------------


def test_detection_reports_each_device_of_the_real_core():
    import openvino
    import psutil

    from hwaccel.plugins import load

    core = openvino.Core()
    found = [h for h in load().call_each("hwaccel_detect")[0] if h[0] == "openvino"]
    ((_, devices),) = found
    assert [d.device for d in devices] == list(core.available_devices)
    cpu = next(d for d in devices if d.device == "CPU")
    assert cpu.available and cpu.backend == "openvino"
    assert cpu.name == core.get_property("CPU", "FULL_DEVICE_NAME")
    expected = [c.lower() for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    # and the compressed weights (NNCF's) that the CPU plugin runs, where not reported
    expected += [c for c in ("int8", "int4") if c not in expected]
    assert list(cpu.capabilities) == expected and "fp32" in cpu.capabilities
    assert cpu.details["openvino"] == openvino.__version__
    assert cpu.details["default_inference_precision"] in ("f32", "bf16", "f16")
    assert cpu.memory_total_bytes == psutil.virtual_memory().total
    assert (cpu.plugin, cpu.distribution) == ("openvino", "hwaccel-openvino")
    # OpenVINO's CPU computes on the host's cores: never timed beside the cpu backend
    assert cpu.compute_resource == "host-cpu"
    assert all(d.compute_resource == f"openvino:{d.device}" for d in devices
               if d.device.split(".")[0] != "CPU")


def test_openvino_missing_is_one_unavailable_record_with_the_reason(monkeypatch):
    from hwaccel_openvino.detect import detect_openvino

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    (record,) = detect_openvino()
    assert (record.backend, record.available) == ("openvino", False)
    assert record.reason.startswith("openvino is not installed")


def _availability(monkeypatch, **env: str) -> dict:
    """The generated tests' availability snippet, run here."""
    import os

    from hwaccel_openvino.template import SNIPPETS

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace: dict = {"os": os}
    exec(SNIPPETS["availability"], namespace)  # noqa: S102 - our own snippet
    return namespace


def test_generated_availability_check_says_why_openvino_cannot_run(monkeypatch):
    import openvino

    devices = openvino.Core().available_devices
    here = _availability(monkeypatch)
    assert here["unavailable_reason"]() is None and here["DEVICE"] == devices[0]
    absent = _availability(monkeypatch, HWACCEL_OPENVINO_DEVICE="NPU.7")
    assert absent["unavailable_reason"]() == (f"OpenVINO device NPU.7 is not among "
                                              f"{', '.join(devices)}")

    def broken():
        raise RuntimeError("no plugins")

    monkeypatch.setattr(openvino, "Core", broken)
    assert _availability(monkeypatch)["unavailable_reason"]().endswith("Core() failed: no plugins")
    monkeypatch.setitem(sys.modules, "openvino", None)
    reason = _availability(monkeypatch)["unavailable_reason"]()
    assert reason.startswith("openvino is not installed")


class _Core:
    """OpenVINO's ``Core`` as a machine with an integrated GPU would answer (test only)."""

    devices = ["CPU", "GPU.0"]
    properties = {
        "GPU.0": {"SUPPORTED_PROPERTIES": ["FULL_DEVICE_NAME", "OPTIMIZATION_CAPABILITIES",
                                           "GPU_DEVICE_TOTAL_MEM_SIZE", "DEVICE_ARCHITECTURE"],
                  "FULL_DEVICE_NAME": "Intel(R) Arc(TM) Graphics (iGPU)",
                  "OPTIMIZATION_CAPABILITIES": ["FP32", "FP16", "INT8", "BIN"],
                  "GPU_DEVICE_TOTAL_MEM_SIZE": 15_032_385_536},
        "CPU": {"SUPPORTED_PROPERTIES": ["FULL_DEVICE_NAME", "OPTIMIZATION_CAPABILITIES"],
                "FULL_DEVICE_NAME": "Intel(R) Core(TM) Ultra 7",
                "OPTIMIZATION_CAPABILITIES": ["FP32", "BF16", "INT8"]},
    }

    @property
    def available_devices(self):
        return self.devices

    def get_property(self, device, name):
        value = self.properties[device].get(name)
        if value is None:  # as the real plugins do for a property they lack
            raise RuntimeError(f"Cannot get unsupported property: {name}")
        return value


def test_gpu_memory_is_read_and_unsupported_properties_are_skipped(monkeypatch):
    import openvino

    from hwaccel_openvino.detect import detect_openvino

    monkeypatch.setattr(openvino, "Core", _Core)
    cpu, gpu = detect_openvino()
    assert (gpu.device, gpu.index, gpu.name) == ("GPU.0", 0, "Intel(R) Arc(TM) Graphics (iGPU)")
    assert gpu.capabilities == ("fp32", "fp16", "int8", "bin", "int4")  # int4: NNCF weights
    assert gpu.memory_total_bytes == 15_032_385_536
    assert gpu.details["memory_source"] == "GPU_DEVICE_TOTAL_MEM_SIZE"
    # DEVICE_ARCHITECTURE is listed but raises; DEVICE_TYPE is not listed: both left out
    assert "architecture" not in gpu.details and "device_type" not in gpu.details
    assert cpu.capabilities == ("fp32", "bf16", "int8", "int4")


def test_a_core_without_devices_or_failing_is_explained(monkeypatch):
    import openvino

    from hwaccel_openvino.detect import detect_openvino

    monkeypatch.setattr(_Core, "devices", [])
    monkeypatch.setattr(openvino, "Core", _Core)
    (record,) = detect_openvino()
    assert not record.available and "available_devices is empty" in record.reason

    def broken():
        raise RuntimeError("Failed to load plugin\nlibopenvino_intel_cpu_plugin.so")

    monkeypatch.setattr(openvino, "Core", broken)
    (record,) = detect_openvino()
    assert not record.available
    assert record.reason.endswith("Core() failed: Failed to load plugin "
                                  "libopenvino_intel_cpu_plugin.so")


def test_importing_the_plugin_imports_neither_openvino_nor_torch():
    code = ("import sys, hwaccel_openvino; "
            "print(sorted(m for m in ('openvino', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


# ---- conversion, cache and wrapper -------------------------------------------------------


@pytest.fixture
def convert_calls(monkeypatch) -> list[object]:
    """Count the calls of ``openvino.convert_model`` (each call is still the real one)."""
    import openvino

    calls: list[object] = []
    real = openvino.convert_model

    def counted(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(openvino, "convert_model", counted)
    return calls


@pytest.fixture(scope="module")
def bert(plugins):
    """The tiny BERT workload and its inputs (batch 2, length 8)."""
    workload, _ = workload_and_model("tiny:bert", plugins, prepare=True)
    return workload, workload.make_inputs(2, 8)


def test_second_conversion_is_a_cache_hit_and_a_new_config_a_miss(
        bert, convert_calls, one_thread):
    from hwaccel_openvino import place_for_workload

    workload, inputs = bert
    first = place_for_workload(workload.load_model(), workload, inputs, model_ref="tiny:bert")
    assert len(convert_calls) == 1 and not first.conversions[0].cached
    assert Path(first.conversions[0].path).name == "model.xml"
    again = place_for_workload(workload.load_model(), workload, inputs, model_ref="tiny:bert")
    assert len(convert_calls) == 1, "the cached IR was converted again"
    (hit,) = again.conversions
    assert hit.cached and hit.key == first.conversions[0].key
    changed = workload.load_model()
    changed.config.classifier_dropout = 0.25  # same weights, different config
    third = place_for_workload(changed, workload, inputs, model_ref="tiny:bert")
    assert len(convert_calls) == 2 and not third.conversions[0].cached
    longer = workload.make_inputs(2, 12)  # a new input shape is its own graph
    place_for_workload(workload.load_model(), workload, longer, model_ref="tiny:bert")
    assert len(convert_calls) == 3


def test_a_damaged_cache_entry_is_converted_again(bert, convert_calls, one_thread):
    from hwaccel_openvino import place_for_workload

    workload, inputs = bert
    first = place_for_workload(workload.load_model(), workload, inputs, model_ref="tiny:bert")
    Path(first.conversions[0].path).write_text("<net broken")
    again = place_for_workload(workload.load_model(), workload, inputs, model_ref="tiny:bert")
    assert len(convert_calls) == 2 and not again.conversions[0].cached
    assert again(**inputs)["logits"].shape == (2, 8, workload.config.vocab_size)


def test_wrapper_answers_like_the_torch_model_without_running_torch(
        plugins, tolerance, monkeypatch, one_thread):
    import torch

    from hwaccel_openvino import OpenVINOModel

    workload, model = workload_and_model("tiny:gpt2", plugins, prepare=True)
    inputs = workload.make_inputs(2, 8)
    # left padding: rows whose keys are all masked, where OpenVINO's own attention gives NaN
    inputs["attention_mask"][0, :3] = 0
    reference = workload.forward(model, inputs)
    wrapper = OpenVINOModel(model, model_ref="tiny:gpt2").prepare(**inputs, use_cache=False)

    def no_torch(*args, **kwargs):
        raise AssertionError("a torch module ran during OpenVINO inference")

    seen = []
    handle = wrapper.register_forward_hook(lambda module, args, output: seen.append(output))
    monkeypatch.setattr(torch.nn.Module, "__call__", no_torch)
    outputs = workload.forward(wrapper, inputs)  # model(**inputs, use_cache=False)
    handle.remove()
    direct = wrapper(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                     use_cache=False)
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0]["logits"].equal(outputs["logits"])
    assert_close(reference, outputs, tolerance)
    assert direct.logits.equal(direct["logits"]) and direct[0].equal(direct.logits)
    assert wrapper.execution_precision == "fp32"
    with pytest.raises(AttributeError, match="not available on OpenVINO"):
        _ = wrapper.get_input_embeddings


def test_tuple_outputs_keep_their_structure(plugins, tolerance, one_thread):
    from hwaccel_openvino import OpenVINOModel

    workload, model = workload_and_model("tiny:vit", plugins, prepare=True)
    inputs = workload.make_inputs(2, 8)
    reference = model(**inputs, output_hidden_states=True)
    outputs = OpenVINOModel(model)(**inputs, output_hidden_states=True)
    assert list(outputs) == ["logits", "hidden_states"]
    assert len(outputs.hidden_states) == len(reference.hidden_states)
    atol, rtol = tolerance
    for got, expected in zip(outputs.hidden_states, reference.hidden_states, strict=True):
        assert (got - expected).abs().max().item() <= atol + rtol * expected.abs().max().item()


def test_onnx_export_is_the_fallback_when_direct_conversion_fails(
        bert, monkeypatch, tolerance, one_thread):
    import openvino

    from hwaccel_openvino import OpenVINOModel

    workload, inputs = bert
    model = workload.load_model()
    reference = workload.forward(model, inputs)
    real = openvino.convert_model

    def only_files(source, *args, **kwargs):
        if not isinstance(source, str):
            raise RuntimeError("Couldn't get TorchScript module by tracing.\nException:\n"
                               "this conversion is refused by the test")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(openvino, "convert_model", only_files)
    wrapper = OpenVINOModel(model, model_ref="tiny:bert").prepare(**inputs)
    assert wrapper.conversions[0].method == "onnx"
    assert_close(reference, workload.forward(wrapper, inputs), tolerance)


def test_what_neither_converter_takes_fails_with_both_messages_on_one_line():
    import torch

    from hwaccel_openvino import ConversionError, OpenVINOModel

    class Eigen(torch.nn.Module):
        def forward(self, x):
            return {"values": torch.linalg.eigh(x @ x.transpose(-1, -2)).eigenvalues}

    with pytest.raises(ConversionError) as failure:
        OpenVINOModel(Eigen())(x=torch.randn(2, 3, 3))
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("openvino.convert_model failed (OpConversionFailure: ")
    assert "aten::linalg_eigh" in message and "the ONNX export fallback failed too" in message
    with pytest.raises(ConversionError, match="takes a torch.nn.Module; list is not one"):
        OpenVINOModel([])(x=torch.zeros(1))


def test_greedy_generation_matches_transformers(plugins, one_thread):
    from hwaccel_openvino import place_for_workload

    workload, model = workload_and_model("tiny:gpt2", plugins, prepare=True)
    inputs = workload.make_inputs(2, 6)

    wrapper = place_for_workload(workload.load_model(), workload, inputs,
                                 model_ref="tiny:gpt2")
    expected = workload.generate(model, inputs, new_tokens=3)
    tokens = workload.generate(wrapper, inputs, new_tokens=3)
    assert tokens.equal(expected)
    assert tokens.shape == (2, workload.generated_length(inputs, new_tokens=3))
    with pytest.raises(NotImplementedError, match="num_beams=4"):
        wrapper.generate(**inputs, max_new_tokens=2, num_beams=4)


# ---- generated tests and benchmarks (subprocesses) -----------------------------------------


@pytest.mark.slow
def test_generated_tests_pass_for_bert_vit_and_whisper(tmp_path):
    out = tmp_path / "generated"
    run = generate_and_run(["tiny:bert", "tiny:vit", "tiny:whisper"], out,
                           backend="openvino", env=ONE_THREAD, expect_passed=13)
    assert "skipped" not in run.stdout
    whisper = (out / "test_hf_tiny_whisper_openvino.py").read_text()
    assert "hwaccel_openvino.place_for_workload" in whisper and "def test_generate" in whisper


@pytest.mark.slow
def test_benchmark_records_the_difference_from_pytorch_and_conversion_failures(tmp_path):
    db = tmp_path / "ov.duckdb"
    proc = run_cli("benchmark", "tiny:bert", "tiny:DDPMPipeline", "--backend", "openvino",
                   "--db", str(db), "--iterations", "5", "--min-seconds", "0", "--threads",
                   "1", "--json", env=ONE_THREAD)
    assert proc.returncode == 1, proc.stderr  # exit 1: one job failed
    bert, ddpm = json.loads(proc.stdout)["results"]
    assert bert["success"] is True, bert
    assert (bert["device"], bert["precision"], bert["threads"]) == ("CPU", "fp32", 1)
    assert 0 <= bert["max_abs_diff"] < 1e-4
    assert bert["load_time_s"] > 0 and bert["p50_ms"] > 0
    assert (ddpm["success"], ddpm["error_category"]) == (False, "backend")
    assert ddpm["error"] == ("openvino.convert_model takes a torch.nn.Module; "
                             "DDPMPipeline is not one")
    rows = hardware_rows(db)
    assert [(r["model_id"], r["success"]) for r in rows] == [("tiny:bert", True),
                                                               ("tiny:DDPMPipeline", False)]
