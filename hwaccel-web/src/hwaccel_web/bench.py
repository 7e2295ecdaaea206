"""The web benchmark: the workload's model exported to fixed-shape ONNX (cached) and run by
onnxruntime-web in a headless browser page on the detected provider, measured by the core's
shared method with each call timed in the page.

The export runs first in a process of its own (:func:`hwaccel.onnx_prepare.export_first`), so
neither its time nor its memory is counted. Load time covers loading the torch model, finding
the export in the cache, starting the browser and the page server and creating the
onnxruntime-web session. :func:`hwaccel.measure.benchmark_workload` then runs the cold call,
the warm-up and the timed calls, every one timed by ``performance.now()`` in the page
(:class:`~hwaccel_web.session.PageTimer`), and compares the last outputs with the CPU PyTorch
fp32 reference. The browser's processes are not the job's, so their memory is recorded apart:
``details.helper_peak_rss_mb`` (the core's key for processes a backend starts beside the job)
sums their kernel high-water marks at the end of the run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult
from hwaccel.measure import benchmark_workload
from hwaccel.onnx_export import ExportError, StaticShapeError
from hwaccel.onnx_prepare import export_first
from hwaccel.runner import failure
from hwaccel.workloads import load_workload
from hwaccel_web.browser import BrowserCrash, BrowserError, BrowserHang
from hwaccel_web.npm import NpmError
from hwaccel_web.session import (
    PageTimer,
    WebModel,
    WebProviderError,
    default_threads,
    load_in_browser,
    webnn_device_type,
)


def _details(model: WebModel, request: BenchmarkRequest) -> dict[str, Any]:
    from hwaccel_web.ortweb import ort_web_source

    hardware = request.hardware
    details: dict[str, Any] = {
        "provider": model.provider, "browser": model.browser.executable,
        "browser_version": model.browser.version, "onnxruntime_web": ort_web_source(),
        "session_create_ms": model.session.get("createMs"),
        "cross_origin_isolated": model.session.get("crossOriginIsolated"),
        "helper_peak_rss_mb": model.browser.peak_rss_mb(),
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


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload in the browser on its provider, against the CPU."""
    exported = export_first(request)
    if "error" in exported:
        return failure(request, exported.get("category", "error"), exported["error"])
    settings = request.settings
    threads = settings.threads or default_threads()
    workload = load_workload(request.model, request.classification)
    workload.prepare()
    timer = PageTimer()

    def place_model(model: Any) -> WebModel:
        timer.model = load_in_browser(model, workload, settings.batch_size, settings.seq_len,
                                      model_ref=request.model, provider=request.hardware.device,
                                      threads=threads, hardware=[request.hardware])
        return timer.model

    try:
        result = benchmark_workload(request, place_model=place_model,
                                    place_inputs=lambda inputs: inputs, threads=threads,
                                    compare_reference=True, timer=timer)
        assert timer.model is not None
        return dataclasses.replace(result, details={**result.details,
                                                    **_details(timer.model, request)})
    except (ExportError, WebProviderError, StaticShapeError) as exc:
        return failure(request, "unsupported", str(exc))
    except NpmError as exc:
        return failure(request, "unavailable", f"onnxruntime-web: {exc}")
    except BrowserHang as exc:
        return failure(request, "timeout", str(exc))
    except BrowserCrash as exc:
        return failure(request, "crash", str(exc))
    except BrowserError as exc:
        return failure(request, "error", str(exc))
    finally:
        if timer.model is not None:
            timer.model.close()
