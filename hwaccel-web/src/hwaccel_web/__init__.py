"""hwaccel backend ``web``: WebGPU, WebNN and WebAssembly in a real headless Chromium.

Detection starts the browser (``HWACCEL_CHROMIUM``, else the system's Chromium or Chrome)
and reports one device per onnxruntime-web execution provider: ``webgpu``, ``webnn`` and
``wasm``, each with the browser's own answer. Models are exported once per input shape to
fixed-shape ONNX (cached) and run in the page by onnxruntime-web (the pinned npm release,
fetched into the cache on first use, or ``HWACCEL_ORT_WEB_DIR``) on exactly the requested
provider. The jobs of one run (a matrix, a benchmark's passes) share one browser, each job
in a page and browser context of its own (:mod:`hwaccel_web.shared`). Playwright, torch and
onnx are imported inside the hooks only.
"""

from __future__ import annotations

from hwaccel import (
    BackendInfo,
    BenchmarkRequest,
    BenchmarkResult,
    HardwareInfo,
    TemplatePart,
    hookimpl,
)

NAME = "web"


@hookimpl
def hwaccel_backend_info() -> BackendInfo:
    """Declare ``web``: used only when named; its providers (``webgpu``, ``webnn``,
    ``wasm``) are the names of its devices."""
    from hwaccel_web.detect import PROVIDERS

    return BackendInfo(name=NAME,
                       description="WebGPU, WebNN and WebAssembly in a headless Chromium",
                       advice="The web backend needs a Chromium (Debian: apt-get install "
                              "chromium, or set HWACCEL_CHROMIUM); for WebNN point "
                              "HWACCEL_CHROMIUM at `python -m hwaccel_web.packaged`",
                       versions=("playwright", "onnx"), aliases=PROVIDERS)


@hookimpl
def hwaccel_detect() -> list[HardwareInfo]:
    """Report the browser's WebGPU, WebNN and WASM providers, or why they are absent."""
    from hwaccel_web.detect import detect_web

    return detect_web()


@hookimpl
def hwaccel_template(backend: str) -> TemplatePart | None:
    """Provide the web snippets for generated tests."""
    if backend != NAME:
        return None
    from hwaccel_web.template import SNIPPETS

    return TemplatePart(owner="backend", name=NAME, snippets=SNIPPETS, exposes=())


@hookimpl
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Benchmark a model in the browser on the provider the request names."""
    if request.hardware.backend != NAME:
        return None
    from hwaccel_web.bench import run

    return run(request)
