"""The qnn backend: detection through ONNX Runtime, the fixed-shape ONNX export and its cache,
the QNN-only session, and real runs on Qualcomm's HTP simulator.

``onnxruntime-qnn`` 2.x is installed here as a plugin execution provider whose
``libQnnHtp.so`` runs Qualcomm's HTP compiler and operators in its x86_64 simulator: detection,
sessions, generated tests and the benchmark run on it for real. The layout of builds that carry
QNN inside ``onnxruntime`` (Snapdragon wheels) is tested with the plugin hidden and ONNX
Runtime's ``get_available_providers`` and package location replaced by the test; the refusal
of a session that does not run on QNN is tested with ``onnxruntime.InferenceSession``
replaced.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import onnx
import onnxruntime
import pytest
import torch

from conftest import ONE_THREAD, generate_and_run, run_cli, workload_and_model
from hwaccel import BenchmarkRequest, BenchmarkSettings, HardwareInfo
from hwaccel.kit.failures import AttributedError
from hwaccel.kit.onnx_export import (
    CallSignature,
    ExportedModel,
    ExportError,
    StaticShapeError,
    TensorSpec,
    cached_export,
    capture,
)
from hwaccel.models.classify import classify
from hwaccel_qnn.detect import BACKEND_PATH_ENV, PROVIDER, detect_qnn
from hwaccel_qnn.runtime import (
    DISABLE_CPU_FALLBACK,
    QnnModel,
    QnnSessionError,
    create_session,
)

REAL_PROVIDERS = [p for p in onnxruntime.get_available_providers() if p != PROVIDER]
"""ONNX Runtime's providers without the QNN plugin (which detection registers in-process)."""
REAL_EP_DEVICES = onnxruntime.get_ep_devices
HTP_LIB = "QnnHtp.dll" if sys.platform == "win32" else "libQnnHtp.so"
CPU_LIB = "QnnCpu.dll" if sys.platform == "win32" else "libQnnCpu.so"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test exports into its own cache folder, with no QNN settings from the caller."""
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(BACKEND_PATH_ENV, raising=False)
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)


@pytest.fixture(scope="module")
def bert(plugins):
    """The tiny BERT workload and its model, on one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield workload_and_model("tiny:bert", plugins, prepare=True)
    finally:
        torch.set_num_threads(threads)


def without_plugin(monkeypatch) -> None:
    """A build without the ``onnxruntime-qnn`` plugin: the package cannot be imported and
    ONNX Runtime lists neither its provider nor its devices."""
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(REAL_PROVIDERS))
    monkeypatch.setattr(onnxruntime, "get_ep_devices", lambda: [
        device for device in REAL_EP_DEVICES() if device.ep_name != PROVIDER])


def with_qnn_provider(monkeypatch) -> None:
    """A build with QNN inside ``onnxruntime`` (no plugin): ONNX Runtime reports the QNN
    provider as available (its real list plus QNN)."""
    without_plugin(monkeypatch)
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: [PROVIDER, *REAL_PROVIDERS])


def qnn_device(library: Path, backend: str = "htp") -> HardwareInfo:
    """A detected-device record as detect_qnn makes it, for tests that bypass detection."""
    return HardwareInfo(backend="qnn", device=f"qnn:{backend}", name="test", available=True,
                        details={"qnn_backend": backend, "backend_path": str(library),
                                 "fp32_runs_as": "fp16" if backend == "htp" else "fp32"})


# -- detection -------------------------------------------------------------------------------


def test_the_htp_here_is_qualcomms_x86_64_simulator():
    (htp,) = detect_qnn()
    assert htp.available and htp.device == "qnn:htp"
    assert htp.name == "Qualcomm HTP (x86_64 simulator)"
    assert htp.details["simulator"] is True and htp.details["soc_model"] == "60"
    assert Path(htp.details["backend_path"]).name == HTP_LIB
    assert Path(htp.details["backend_path"]).parent == Path(htp.details["plugin"])
    assert PROVIDER in htp.details["providers"] and htp.details["ep_devices"]


def test_qnn_without_the_plugin_is_absent_with_the_install_hint(monkeypatch):
    without_plugin(monkeypatch)
    (info,) = detect_qnn()
    assert not info.available and info.backend == "qnn"
    assert info.reason == (f"onnxruntime {onnxruntime.__version__} has no {PROVIDER} "
                           f"(providers: {', '.join(REAL_PROVIDERS)}); pip install "
                           "'hwaccel[qnn]' (onnxruntime-qnn)")


def test_qnn_present_with_its_libraries_next_to_the_onnxruntime_package(monkeypatch, tmp_path):
    with_qnn_provider(monkeypatch)
    package = tmp_path / "onnxruntime"
    (package / "capi").mkdir(parents=True)
    (package / "capi" / HTP_LIB).write_bytes(b"\x7fELF")
    (package / "capi" / CPU_LIB).write_bytes(b"\x7fELF")
    monkeypatch.setattr(onnxruntime, "__file__", str(package / "__init__.py"))
    npu = SimpleNamespace(type="OrtHardwareDeviceType.NPU", vendor="Qualcomm", vendor_id=0x5143,
                          device_id=0, metadata={"DriverVersion": "1.0"})
    monkeypatch.setattr(onnxruntime, "get_ep_devices", lambda: [
        SimpleNamespace(ep_name=PROVIDER, device=npu, ep_metadata={"version": "2.0"}),
        SimpleNamespace(ep_name="CPUExecutionProvider", device=npu, ep_metadata={})])
    htp, cpu = detect_qnn()
    assert htp.available and cpu.available
    assert (htp.device, cpu.device) == ("qnn:htp", "qnn:cpu")
    assert htp.details["backend_path"] == str(package / "capi" / HTP_LIB)
    assert cpu.details["backend_path"] == str(package / "capi" / CPU_LIB)
    assert "fp16" in htp.capabilities and htp.details["fp32_runs_as"] == "fp16"
    assert cpu.details["fp32_runs_as"] == "fp32"
    assert PROVIDER in htp.details["providers"]
    (ep_device,) = htp.details["ep_devices"]
    assert (ep_device["type"], ep_device["vendor"]) == ("NPU", "Qualcomm")


def test_qnn_library_named_by_the_environment(monkeypatch, tmp_path):
    with_qnn_provider(monkeypatch)
    library = tmp_path / "sdk" / HTP_LIB
    library.parent.mkdir()
    library.write_bytes(b"\x7fELF")
    monkeypatch.setenv(BACKEND_PATH_ENV, str(library))
    (htp,) = detect_qnn()  # the real onnxruntime folder holds no QNN library
    assert htp.available and htp.details["backend_path"] == str(library)


def test_qnn_provider_without_a_backend_library_is_unavailable(monkeypatch):
    with_qnn_provider(monkeypatch)
    (info,) = detect_qnn()
    assert not info.available
    assert f"has {PROVIDER} but no QNN backend library" in info.reason
    assert str(Path(onnxruntime.__file__).parent / "capi") in info.reason


def test_the_plugin_loads_without_onnxruntime_or_torch():
    code = ("import sys, hwaccel_qnn; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


# -- the ONNX export and its cache (for real) ---------------------------------------------------


def test_export_is_cached_by_shape_and_matches_torch(bert):
    workload, model = bert
    inputs = workload.make_inputs(2, 8)
    first = cached_export(model, workload.forward, inputs, model_ref="tiny:bert")
    assert not first.cache_hit and first.path.is_file()
    assert first.path.parent.name == "onnx" and first.path.suffix == ".onnx"
    stamp = first.path.stat().st_mtime_ns
    second = cached_export(model, workload.forward, inputs, model_ref="tiny:bert")
    assert second.cache_hit and second.path == first.path
    assert second.path.stat().st_mtime_ns == stamp  # not written again
    other = cached_export(model, workload.forward, workload.make_inputs(2, 12),
                         model_ref="tiny:bert")
    assert not other.cache_hit and other.path != first.path

    graph = onnx.load(str(first.path)).graph
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert shapes == {"input_ids": [2, 8], "attention_mask": [2, 8]}
    assert all(d.HasField("dim_value") for i in graph.input
               for d in i.type.tensor_type.shape.dim)
    record = json.loads(first.path.with_suffix(".json").read_text())
    assert record["model"] == "tiny:bert" and record["graph_inputs"] == list(shapes)

    # The export checked against torch with ORT's CPU provider, here in the test only.
    session = onnxruntime.InferenceSession(str(first.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
    expected = workload.forward(model, inputs)["logits"]
    assert logits.shape == tuple(expected.shape)
    assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)


def test_a_different_model_ref_is_a_different_export(bert):
    workload, model = bert
    inputs = workload.make_inputs(1, 4)
    first = cached_export(model, workload.forward, inputs, model_ref="tiny:bert")
    renamed = cached_export(model, workload.forward, inputs, model_ref="./my-bert")
    assert not renamed.cache_hit and renamed.path != first.path


def test_capture_records_the_workloads_constant_arguments(plugins, one_thread):
    workload, model = workload_and_model("tiny:gpt2", plugins, prepare=True)
    signature, example = capture(model, workload.forward, workload.make_inputs(1, 4))
    assert dict(signature.constants) == {"use_cache": False}
    assert set(example) == {"input_ids", "attention_mask"}
    assert ("logits", 0) in signature.outputs


def test_a_call_by_position_is_exported_by_the_parameters_names(bert):
    workload, model = bert
    inputs = workload.make_inputs(1, 4)
    signature, example = capture(model, lambda m, x: m(x["input_ids"]), inputs)
    assert signature.positional == ("input_ids",)  # BertModel.forward's first parameter
    assert [spec.name for spec in signature.inputs] == ["input_ids"]
    # the exported graph is called the same way, by position
    called = signature.check_call((inputs["input_ids"],), {}, runtime="r", remedy="")
    assert called["input_ids"] is inputs["input_ids"]
    with pytest.raises(StaticShapeError, match="2 positional input"):
        signature.check_call((inputs["input_ids"], inputs["input_ids"]), {}, runtime="r",
                             remedy="")


def test_a_graph_input_the_exporter_renamed_is_fed_from_its_call_input(tmp_path):
    signature = CallSignature(inputs=(TensorSpec("sample", (1,), "float32"),), constants=(),
                              outputs=(("output", 0),), structure="tensor")
    exported = ExportedModel(path=tmp_path / "m.onnx", signature=signature,
                             graph_inputs=("sample.1",), cache_hit=False, seconds=0.0)
    sample = torch.ones(1)
    assert exported.feeds({"sample": sample}) == {"sample.1": sample}
    with pytest.raises(AttributedError, match="matches none"):
        exported.feeds({"other": sample})


def test_capture_refuses_what_one_graph_cannot_serve(bert):
    workload, model = bert

    def two_shapes(m, inputs):
        m(input_ids=inputs["input_ids"])
        return m(input_ids=inputs["input_ids"][:, :2])

    inputs = workload.make_inputs(1, 4)
    with pytest.raises(ExportError, match="2 times with different inputs"):
        capture(model, two_shapes, inputs)
    with pytest.raises(ExportError, match="not a torch.nn.Module"):
        capture(object(), workload.forward, inputs)


def test_the_qnn_model_feeds_exactly_the_exported_shapes(bert, tmp_path):
    workload, model = bert
    inputs = workload.make_inputs(2, 8)
    exported = cached_export(model, workload.forward, inputs, model_ref="tiny:bert")
    # Wrapping a CPU session is done here, in a test: it checks the wrapper, not QNN.
    cpu = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    qnn_model = QnnModel(cpu, exported, qnn_device(tmp_path / HTP_LIB), "fp16")
    outputs = workload.forward(qnn_model, inputs)
    expected = workload.forward(model, inputs)
    assert set(outputs) == set(expected)
    assert torch.allclose(outputs["logits"], expected["logits"], atol=1e-4, rtol=1e-4)
    assert qnn_model(**inputs).logits is not None  # attribute access like ModelOutput
    with pytest.raises(StaticShapeError, match=r"input_ids' is int64\[1, 8\] but the QNN "
                                               r"model's graph was exported for \(input_ids "
                                               r"int64\[2, 8\]"):
        workload.forward(qnn_model, workload.make_inputs(1, 8))
    with pytest.raises(StaticShapeError, match="exported with"):
        qnn_model(**inputs, use_cache=False)
    with pytest.raises(AttributeError, match="fixed-shape ONNX graph"):
        _ = qnn_model.generate


# -- the session: QNN or nothing -----------------------------------------------------------------


class RecordingSession:
    """Stands in for ``onnxruntime.InferenceSession``, reporting the providers it is given."""

    created: list[dict] = []
    providers = ["CPUExecutionProvider"]

    def __init__(self, path, sess_options=None, providers=None):
        type(self).created.append({"path": path, "options": sess_options,
                                   "providers": providers})

    def get_providers(self):
        return list(type(self).providers)


def test_a_session_not_on_qnn_is_refused(monkeypatch, tmp_path):
    without_plugin(monkeypatch)
    RecordingSession.created = []
    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    with pytest.raises(QnnSessionError, match=f"on CPUExecutionProvider instead of {PROVIDER}"):
        create_session(tmp_path / "m.onnx", {"backend_path": "libQnnHtp.so"})
    (call,) = RecordingSession.created
    assert call["providers"] == [(PROVIDER, {"backend_path": "libQnnHtp.so"})]
    assert call["options"].get_session_config_entry(DISABLE_CPU_FALLBACK) == "1"


def test_a_session_on_qnn_is_accepted(monkeypatch, tmp_path):
    without_plugin(monkeypatch)
    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    monkeypatch.setattr(RecordingSession, "providers", [PROVIDER, "CPUExecutionProvider"])
    session = create_session(tmp_path / "m.onnx", {"backend_path": "libQnnHtp.so"})
    assert session.get_providers()[0] == PROVIDER


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_real_onnxruntime_without_qnn_never_falls_back_to_the_cpu(bert, monkeypatch,
                                                                   tmp_path):
    without_plugin(monkeypatch)
    workload, model = bert
    exported = cached_export(model, workload.forward, workload.make_inputs(1, 4),
                             model_ref="tiny:bert")
    with pytest.raises(QnnSessionError, match="could not create a QNNExecutionProvider "
                                              "session.*fallback to CPU EP has been "
                                              "explicitly disabled"):
        create_session(exported.path, {"backend_path": str(tmp_path / HTP_LIB)})


class QnnReportingCpuSession:
    """A real CPU session that reports QNN, so the benchmark's measuring path can run here."""

    def __init__(self, path, sess_options=None, providers=None):
        assert providers[0][0] == PROVIDER
        self._session = REAL_SESSION(path, providers=["CPUExecutionProvider"])

    def get_providers(self):
        return [PROVIDER, "CPUExecutionProvider"]

    def run(self, names, feed):
        return self._session.run(names, feed)


REAL_SESSION = onnxruntime.InferenceSession


def _request(plugins, hardware: HardwareInfo) -> BenchmarkRequest:
    return BenchmarkRequest(
        model="tiny:bert", hardware=hardware,
        classification=classify("tiny:bert", plugins).classification,
        settings=BenchmarkSettings(batch_size=1, seq_len=8, warmup=1, min_iterations=3,
                                   min_seconds=0))


def test_benchmark_path_measures_through_the_session_it_was_given(plugins, monkeypatch,
                                                                   tmp_path, one_thread):
    from hwaccel.kit import onnx_export
    from hwaccel_qnn.bench import run

    without_plugin(monkeypatch)
    monkeypatch.setattr(onnxruntime, "InferenceSession", QnnReportingCpuSession)
    exports = []

    def spy(*args, **kwargs):
        exports.append(real_export(*args, **kwargs))
        return exports[-1]

    real_export = onnx_export.cached_export
    monkeypatch.setattr(onnx_export, "cached_export", spy)
    result = run(_request(plugins, qnn_device(tmp_path / HTP_LIB)))
    assert result.success, result.error
    assert result.precision == "fp16" and result.iterations >= 3
    assert result.output_shapes["logits"][:2] == [1, 8]
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    # exported by the child process first: the measured process found it in the cache
    assert [e.cache_hit for e in exports] == [True]
    assert exports[0].path.parent == tmp_path / "cache" / "onnx"


def test_benchmark_of_a_model_that_cannot_be_exported_is_the_backends_failure(plugins,
                                                                             tmp_path):
    from hwaccel_qnn.bench import run

    request = dataclasses.replace(
        _request(plugins, qnn_device(tmp_path / HTP_LIB)), model="tiny:mixtral",
        classification=classify("tiny:mixtral", plugins).classification)
    result = run(request)
    assert not result.success and result.error_category == "backend"
    assert result.error.startswith("torch.onnx.export of MixtralForCausalLM failed: ")


def test_benchmark_refuses_a_session_that_is_not_on_qnn(plugins, monkeypatch, tmp_path,
                                                         one_thread):
    from hwaccel_qnn.bench import run

    without_plugin(monkeypatch)
    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    monkeypatch.setattr(RecordingSession, "providers", ["CPUExecutionProvider"])
    result = run(_request(plugins, qnn_device(tmp_path / HTP_LIB)))
    assert not result.success and result.error_category == "backend"
    assert "instead of QNNExecutionProvider" in result.error


# -- generated tests and the CLI on this machine ---------------------------------------------


def test_generated_tests_run_on_the_htp_simulator(tmp_path):
    # two rows of 16 tokens: without graph_fixes' rewrite the second row is off by 0.32
    run = generate_and_run(["tiny:bert"], tmp_path / "generated", backend="qnn",
                           env=ONE_THREAD)
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout


def test_benchmark_cli_runs_on_the_htp_simulator_and_says_so(tmp_db):
    proc = run_cli("benchmark", "tiny:bert", "--backend", "qnn", "--batch-size", "1",
                   "--iterations", "3", "--warmup", "1", "--db", str(tmp_db), "--json",
                   env={**ONE_THREAD, "HWACCEL_CACHE_DIR": str(tmp_db.parent / "cache")})
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["success"] and result["device"] == "qnn:htp"
    assert result["precision"] == "fp16" and result["max_abs_diff"] < 0.01
    assert "simulator" in result["details"]["latency_of"]


def test_int8_runs_the_quantized_graph_and_a_second_run_loads_the_compiled_one(tmp_db):
    cache = tmp_db.parent / "cache"
    args = ("benchmark", "tiny:bert", "--backend", "qnn", "--precision", "int8",
            "--iterations", "3", "--warmup", "1", "--db", str(tmp_db), "--json")
    env = {**ONE_THREAD, "HWACCEL_CACHE_DIR": str(cache)}
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    (result,) = json.loads(first.stdout)["results"]
    assert result["success"] and result["precision"] == "int8", result["error"]
    quantization = result["details"]["quantization"]
    assert quantization["activations"] == "uint16" and quantization["calibration_batches"] == 4
    assert result["details"]["requested_precision"] == "int8"
    (qdq,) = (cache / "onnx").glob("*.qdq-*[0-9a-f].onnx")
    assert {node.op_type for node in onnx.load(str(qdq)).graph.node} >= {
        "QuantizeLinear", "DequantizeLinear"}
    (compiled,) = (cache / "onnx").glob(f"{qdq.stem}.qnn-*.ctx.onnx")
    assert "EPContext" in {node.op_type for node in onnx.load(str(compiled)).graph.node}
    stamp = compiled.stat().st_mtime_ns
    second = run_cli(*args, env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["results"][0]["precision"] == "int8"
    assert compiled.stat().st_mtime_ns == stamp  # loaded, not compiled and written again
    assert not list((cache / "onnx").glob("*partial*"))


def test_int8_on_a_device_that_does_not_declare_it_is_unsupported_not_a_float_run(tmp_db):
    proc = run_cli("benchmark", "tiny:bert", "--backend", "cpu", "--precision", "int8",
                   "--db", str(tmp_db), "--json", env=ONE_THREAD)
    assert proc.returncode == 1
    (result,) = json.loads(proc.stdout)["results"]
    assert not result["success"] and result["error_category"] == "unsupported"
    assert "cpu does not declare int8" in result["error"]


# -- the HTP's batch-broadcast rewrite -------------------------------------------------------


def rewritten_rows_on_the_htp(path: Path, feed: dict[str, object], *,
                              relative: bool = False) -> list[float]:
    """Each batch row's largest difference between the graph rewritten for the HTP, run on
    the simulator, and the graph as written, run by ONNX Runtime's CPU provider (divided by
    the largest expected value with ``relative``)."""
    import numpy as np

    from hwaccel_qnn.graph_fixes import prepared_for_htp
    from hwaccel_qnn.runtime import provider_options

    cpu = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = cpu.run(None, feed)[0]
    (htp,) = detect_qnn()
    session = create_session(prepared_for_htp(path), provider_options(htp),
                             cache_context=False)
    got = session.run(None, feed)[0]
    scale = float(np.abs(expected).max()) if relative else 1.0
    return [float(np.abs(got[row] - expected[row]).max()) / scale
            for row in range(len(expected))]


def _add_then_layer_norm(path: Path, batch: int, computed: bool) -> dict[str, object]:
    """``LayerNorm(x[batch,16,32] + c[1,16,32])``, with ``c`` a constant or computed from an
    input (``Relu(c_in)``); returns a feed."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c = rng.standard_normal((1, 16, 32)).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16, 32])]
    initializers = [numpy_helper.from_array(np.ones(32, np.float32), "w"),
                    numpy_helper.from_array(np.zeros(32, np.float32), "b")]
    nodes = []
    if computed:
        inputs.append(helper.make_tensor_value_info("c_in", TensorProto.FLOAT, [1, 16, 32]))
        nodes.append(helper.make_node("Relu", ["c_in"], ["c"]))
    else:
        initializers.append(numpy_helper.from_array(c, "c"))
    nodes += [helper.make_node("Add", ["x", "c"], ["s"]),
              helper.make_node("LayerNormalization", ["s", "w", "b"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "add_ln", inputs, [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 16, 32])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    feed = {"x": rng.standard_normal((batch, 16, 32)).astype(np.float32)}
    return {**feed, "c_in": c} if computed else feed


@pytest.mark.parametrize("computed", [False, True], ids=["constant", "computed"])
def test_the_rewrite_gives_the_broadcast_operand_its_batch_and_keeps_the_result(tmp_path,
                                                                               computed):
    import numpy as np

    from hwaccel_qnn.graph_fixes import prepared_for_htp

    path = tmp_path / "g.onnx"
    feed = _add_then_layer_norm(path, 3, computed)
    rewritten = prepared_for_htp(path)
    assert rewritten != path
    model = onnx.load(str(rewritten))
    add = next(node for node in model.graph.node if node.op_type == "Add")
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    if computed:
        assert "Tile" in {node.op_type for node in model.graph.node}
    else:
        assert shapes[add.input[1]] == [3, 16, 32]
    cpu = ["CPUExecutionProvider"]
    before = onnxruntime.InferenceSession(str(path), providers=cpu).run(None, feed)[0]
    after = onnxruntime.InferenceSession(str(rewritten), providers=cpu).run(None, feed)[0]
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    assert prepared_for_htp(path) == rewritten  # written once


def test_a_graph_of_one_row_is_left_as_exported(tmp_path):
    from hwaccel_qnn.graph_fixes import prepared_for_htp

    path = tmp_path / "g.onnx"
    _add_then_layer_norm(path, 1, computed=False)
    assert prepared_for_htp(path) == path


def test_every_row_agrees_on_the_htp_after_the_rewrite(tmp_path):
    path = tmp_path / "g.onnx"
    feed = _add_then_layer_norm(path, 2, computed=False)
    assert rewritten_rows_on_the_htp(path, feed) < [1e-2] * 2


def _long_matmul(path: Path, batch: int, rows: int) -> dict[str, object]:
    """``X[batch, rows, 32] @ W[32, 32]`` with ``W`` a constant; returns a feed."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.standard_normal((32, 32)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "long_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, rows, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, rows, 32])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return {"x": rng.standard_normal((batch, rows, 32)).astype(np.float32)}


@pytest.mark.parametrize("rows, rewritten", [(1500, True), (1504, False), (1000, False)])
def test_only_the_long_products_the_htp_gets_wrong_get_a_batched_weight(tmp_path, rows,
                                                                        rewritten):
    import numpy as np

    from hwaccel_qnn.graph_fixes import batch_matmul_weights

    path = tmp_path / "m.onnx"
    feed = _long_matmul(path, 2, rows)
    model = onnx.load(str(path))
    assert batch_matmul_weights(model) == int(rewritten)
    if rewritten:
        (weight,) = [i for i in model.graph.initializer if i.name != "w"]
        assert list(weight.dims) == [2, 32, 32]
        cpu = ["CPUExecutionProvider"]
        before = onnxruntime.InferenceSession(str(path), providers=cpu).run(None, feed)[0]
        after = onnxruntime.InferenceSession(model.SerializeToString(),
                                             providers=cpu).run(None, feed)[0]
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)


def test_every_row_of_a_long_product_agrees_on_the_htp_after_the_rewrite(tmp_path):
    path = tmp_path / "m.onnx"
    feed = _long_matmul(path, 2, 1500)
    assert rewritten_rows_on_the_htp(path, feed, relative=True) < [1e-2] * 2


def test_a_refused_session_keeps_no_compiled_graph(tmp_path):
    from onnx import TensorProto, helper

    from hwaccel_qnn.runtime import provider_options

    graph = helper.make_graph(  # NonZero: QNN runs the Relu, not the NonZero
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("NonZero", ["r"], ["y"])],
        "partly", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    path = tmp_path / "partly.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    (htp,) = detect_qnn()
    with pytest.raises(QnnSessionError, match="fallback to CPU EP has been explicitly disabled"):
        create_session(path, provider_options(htp))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partly.onnx"]


def _mask_gather(path: Path) -> dict[str, object]:
    """transformers' padding-mask gather: a ``[32, 1]`` table (two rows of 16 positions,
    flattened) gathered with ``[2, 1, 1, 16]`` indices, a rank-5 output."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    indices = numpy_helper.from_array(
        np.arange(32, dtype=np.int64).reshape(2, 1, 1, 16), "indices")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "indices"], ["y"], axis=0)], "mask_gather",
        [helper.make_tensor_value_info("table", TensorProto.FLOAT, [32, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 1, 16, 1])], [indices])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    table = np.ones((32, 1), np.float32)
    table[16 + 11:] = 0.0  # the second text is 11 tokens long, the first 16
    return {"table": table}


def test_a_high_rank_gather_is_rewritten_with_flat_indices_and_keeps_its_result(tmp_path):
    import numpy as np

    from hwaccel_qnn.graph_fixes import flatten_gather_indices

    path = tmp_path / "g.onnx"
    feed = _mask_gather(path)
    model = onnx.load(str(path))
    assert flatten_gather_indices(model) == 1
    assert [node.op_type for node in model.graph.node] == ["Gather", "Reshape"]
    cpu = ["CPUExecutionProvider"]
    before = onnxruntime.InferenceSession(str(path), providers=cpu).run(None, feed)[0]
    after = onnxruntime.InferenceSession(model.SerializeToString(),
                                         providers=cpu).run(None, feed)[0]
    np.testing.assert_array_equal(after, before)
    assert rewritten_rows_on_the_htp(path, feed) < [1e-3] * 2
