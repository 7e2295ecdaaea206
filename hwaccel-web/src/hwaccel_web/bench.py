"""The web benchmark: the workload's model exported to fixed-shape ONNX (cached) and run by
onnxruntime-web in a headless browser page on the detected provider, measured by the core's
shared method with each call timed in the page.

The export runs first in a process of its own (:class:`hwaccel_web.export.ExportBeforeMeasuring`),
so neither its time nor its memory is counted; meanwhile the job opens its page in the run's
browser (started by the run's first web job, :mod:`hwaccel_web.shared`) and onnxruntime-web
starts there (:class:`hwaccel_web.page.WebPage`; ``details.runtime_start_ms``). Load time
covers loading the torch model, finding the export in the cache, waiting for the runtime if
it is still starting, and creating the model's onnxruntime-web session
(``details.session_create_ms``). :func:`hwaccel.kit.measure.benchmark_workload` then runs the cold
call,
the warm-up and the timed calls, every one timed by ``performance.now()`` in the page
(:class:`~hwaccel_web.session.PageTimer`), and compares the last outputs with the CPU PyTorch
fp32 reference.

The browser's processes are not the job's, so what the job's work costs in the browser is
recorded apart, in ``details.helper_peak_rss_mb`` (the core's key for processes a backend
runs beside the job): the kernel high-water marks of the page's own renderer processes plus
the GPU process's peak while the page was open (:mod:`hwaccel_web.page_memory`;
``details.browser_memory`` has the parts). The browser's main and utility processes, shared by
every job of the run, are not counted.

Every failure carries whose it is (:mod:`hwaccel.kit.failures`): ``backend`` when the exporter or
onnxruntime-web refuses the model or fails a run, ``timeout`` for a browser that stopped
answering, ``crash`` for one that died, ``missing-dependency`` when onnxruntime-web cannot be
fetched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.kit.failures import HARNESS, AttributedError, failure
from hwaccel.kit.measure import benchmark_workload
from hwaccel.kit.workloads import load_workload
from hwaccel_web.export import ExportBeforeMeasuring
from hwaccel_web.page import WebPage, webnn_device_type
from hwaccel_web.session import PageTimer, WebModel, default_threads, load_in_browser


def _details(model: WebModel, request: BenchmarkRequest) -> dict[str, Any]:
    from hwaccel_web.ortweb import ort_web_source

    hardware = request.hardware
    memory = model.browser.page_peaks()
    details: dict[str, Any] = {
        "provider": model.provider, "browser": model.browser.executable,
        "browser_version": model.browser.version, "browser_pid": model.browser.pid,
        "shared_browser": model.browser.shared, "onnxruntime_web": ort_web_source(),
        "runtime_start_ms": model.session.get("startMs"),
        "session_create_ms": model.session.get("createMs"),
        "cross_origin_isolated": model.session.get("crossOriginIsolated"),
        "helper_peak_rss_mb": memory.get("page_peak_mb"), "browser_memory": memory,
        "onnx": model.exported.path.name, "browser_console": model.browser.console[-20:]}
    if model.provider == "webnn":
        details["webnn_device_type"] = webnn_device_type()
    if model.provider == "webgpu":
        adapter = hardware.details.get("webgpu", {})
        details["fallback_adapter"] = adapter.get("isFallbackAdapter")
    if request.settings.precision != "fp32":
        details["precision_fallback"] = (f"{request.settings.precision} asked; the web backend "
                                         "runs the fp32 export")
    return details


NO_GENERATION = ("the web backend runs one exported forward graph in onnxruntime-web, without "
                 "past keys/values as graph inputs and outputs, so it does not generate")


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload in the browser on its provider, against the CPU
    (a generation request is ``unsupported``: :data:`NO_GENERATION`)."""
    if request.settings.new_tokens > 0:
        return failure(request, "unsupported", NO_GENERATION)
    settings = request.settings
    threads = settings.threads or default_threads()
    export = ExportBeforeMeasuring(request)
    try:
        page = WebPage(request.hardware.device, threads)
    except AttributedError as exc:  # no browser, or onnxruntime-web could not be fetched
        export.wait()
        return failure(request, exc.category, exc.message)
    timer = PageTimer()
    try:
        exported = export.wait()
        if "error" in exported:
            return failure(request, exported.get("category", HARNESS), exported["error"])
        workload = load_workload(request.model, request.classification)
        workload.prepare()

        def place_model(model: Any) -> WebModel:
            timer.model = load_in_browser(
                model, workload, settings.batch_size, settings.seq_len,
                model_ref=request.model, provider=request.hardware.device, threads=threads,
                hardware=[request.hardware], page=page)
            return timer.model

        result = benchmark_workload(request, place_model=place_model,
                                    place_inputs=lambda inputs: inputs, threads=threads,
                                    compare_reference=True, timer=timer)
        assert timer.model is not None
        return dataclasses.replace(result, details={**result.details,
                                                    **_details(timer.model, request)})
    except AttributedError as exc:  # every stage's failure, with whose it is
        return failure(request, exc.category, exc.message)
    finally:
        page.close()
