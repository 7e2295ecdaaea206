"""OpenVINO's int8/int4 weights (NNCF), its native precision, and a cached IR read without
loading the PyTorch model.

OpenVINO, NNCF and the CPU device are installed here, so every conversion, compression and
compilation is real; a missing nncf is made by replacing its import in one test only.
"""

from __future__ import annotations

import json
import sys
import weakref
from pathlib import Path

import pytest

from conftest import workload_and_model


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One IR cache for the module: the float IR converted once serves every test."""
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.fixture(autouse=True)
def own_cache(cache, monkeypatch):
    """Convert into the module's cache folder."""
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(cache))


@pytest.fixture(scope="module")
def cpu():
    """The real OpenVINO CPU device, as detection reports it."""
    from hwaccel_openvino.detect import detect_openvino

    return next(h for h in detect_openvino() if h.device == "CPU")


def benchmark(plugins, cpu, precision: str):
    """Benchmark tiny:bert on OpenVINO's CPU at ``precision`` (batch 2, length 8, 3 calls)."""
    from hwaccel.models.classify import classify_ref
    from hwaccel.models.resolve import resolve_model
    from hwaccel.types import BenchmarkRequest, BenchmarkSettings
    from hwaccel_openvino.bench import run

    classification = classify_ref(resolve_model("tiny:bert"), plugins).classification
    settings = BenchmarkSettings(batch_size=2, seq_len=8, warmup=0, min_iterations=3,
                                 min_seconds=0, threads=1, precision=precision)
    return run(BenchmarkRequest(model="tiny:bert", hardware=cpu,
                                classification=classification, settings=settings))


def cached_entries(cache: Path) -> dict[str | None, list[Path]]:
    """The cached IR files by the weight compression their key names (None: float IR)."""
    entries: dict[str | None, list[Path]] = {}
    for spec in (cache / "openvino").glob("*/spec.json"):
        compression = json.loads(spec.read_text())["parts"].get("weights_compression")
        entries.setdefault(compression, []).append(spec.parent / "model.xml")
    return entries


def test_int8_weights_record_int8_a_small_difference_and_u8_weights_in_the_ir(
        plugins, cpu, cache, one_thread):
    assert {"int8", "int4"} <= set(cpu.capabilities)
    fp32 = benchmark(plugins, cpu, "fp32")
    int8 = benchmark(plugins, cpu, "int8")
    assert (int8.success, int8.precision) == (True, "int8")
    assert int8.details["requested_precision"] == "int8"
    assert int8.details["weights"].startswith("int8_asym")
    assert int8.details["activations"] in cpu.capabilities  # what the device computed in
    # weights rounded to 8 bits move the logits, a little (fp32 conversion: ~1e-7)
    assert fp32.max_abs_diff < 1e-5 < int8.max_abs_diff < 0.05
    (xml,) = cached_entries(cache)["int8"]
    assert 'element_type="u8"' in xml.read_text()  # the cached IR holds int8 weights


def test_native_runs_the_devices_own_precision_and_records_it(plugins, cpu, one_thread):
    import openvino

    result = benchmark(plugins, cpu, "native")
    default = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    assert result.success
    assert result.precision == {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}[default]
    assert result.precision in cpu.capabilities
    assert result.details["requested_precision"] == "native"
    assert result.details["activations"] == result.precision


def test_a_cached_ir_is_read_without_loading_the_pytorch_model(plugins, one_thread):
    import gc

    from hwaccel_openvino import place_for_workload

    workload, _ = workload_and_model("tiny:bert", plugins, prepare=True)
    inputs = workload.make_inputs(2, 5)  # a shape no other test converts
    loaded: list[weakref.ref] = []

    def load_model():
        model = workload.load_model()
        loaded.append(weakref.ref(model))
        return model

    first = place_for_workload(load_model, workload, inputs, model_ref="tiny:bert",
                               load_lazily=True)
    gc.collect()
    assert len(loaded) == 1 and not first.conversions[0].cached
    assert loaded[0]() is None, "the model loaded only to convert was kept"
    again = place_for_workload(load_model, workload, inputs, model_ref="tiny:bert",
                               load_lazily=True)
    assert again.conversions[0].cached and again.conversions[0].key == first.conversions[0].key
    outputs = workload.forward(again, inputs)
    assert again.config.vocab_size == outputs["logits"].shape[-1]
    assert type(again.blueprint).__name__ == "BertForMaskedLM"  # the stand-in, not loaded
    assert len(loaded) == 1, "a cached IR loaded the PyTorch model"
    assert outputs["logits"].equal(workload.forward(first, inputs)["logits"])
    assert type(again.source).__name__ == "BertForMaskedLM" and len(loaded) == 2  # on demand


def test_missing_nncf_is_the_backends_failure_naming_the_install(monkeypatch):
    import numpy as np
    import openvino
    from openvino import opset13 as ops

    from hwaccel.kit.failures import BACKEND
    from hwaccel_openvino.weights import CompressionError, compress

    x = ops.parameter([1, 8], np.float32, name="x")
    weight = ops.constant(np.ones((4, 8), np.float32))
    graph = openvino.Model([ops.matmul(x, weight, False, True)], [x], "matmul")
    assert compress(graph, "native") is graph  # float precisions need no nncf
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf now raises ImportError
    with pytest.raises(CompressionError) as failure:
        compress(graph, "int4")
    assert failure.value.category == BACKEND
    assert "need nncf" in str(failure.value)
    assert "pip install hwaccel-openvino" in str(failure.value)


def test_only_cpus_and_gpus_declare_compressed_weights():
    from hwaccel_openvino.detect import declared_capabilities

    assert declared_capabilities("GPU.1", ["FP16", "INT8"]) == ("fp16", "int8", "int4")
    assert declared_capabilities("CPU", ["FP32"]) == ("fp32", "int8", "int4")
    assert declared_capabilities("NPU", ["FP16", "INT8"]) == ("fp16", "int8")
