"""Source snippets for generated tests on the web backend (slots of the pipelines' templates).

The generated test runs the model in a real headless browser. Detection (``hwaccel detect``'s,
from its cache while the plugins and settings are unchanged) says which providers the browser
offers, and the test skips with the browser's reason when the chosen one is absent. The
provider is ``HWACCEL_DEVICE`` when the matrix names one of ``webgpu``/``webnn``/``wasm``, else
``HWACCEL_WEB_PROVIDER``, else the fallback chain WebGPU → WebNN → WASM; ``place_model``
exports the model for the test's batch size and sequence length and opens it with
onnxruntime-web on that provider.
"""

SNIPPETS = {
    "imports": """\
import functools

import torch
from hwaccel.types import Classification
from hwaccel.kit.workloads import load_workload""",
    "availability": '''\
PROVIDERS = ("webgpu", "webnn", "wasm")
# the provider: the matrix names its cell's, a user may name one
_NAMED = (os.environ.get("HWACCEL_DEVICE"), os.environ.get("HWACCEL_WEB_PROVIDER"))
WANTED = next((name for name in _NAMED if name in PROVIDERS), None)
DEVICE = WANTED or "web"


@functools.lru_cache(maxsize=1)
def web_hardware():
    """The browser's providers as `hwaccel detect` reports them (cached)."""
    from hwaccel.kit.hardware import detected

    return detected("web")


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why no browser provider can run this test (the browser's reasons), or None."""
    try:
        from hwaccel_web.session import choose_provider
    except ImportError:
        return "hwaccel-web is not installed"
    order, skipped = choose_provider(web_hardware(), WANTED)
    return None if order else "; ".join(skipped)''',
    "placement": '''\
def place_model(model):
    """Export the model for this file's fixed input shapes; open it in the browser."""
    from hwaccel_web.session import load_in_browser

    workload = load_workload(MODEL, Classification.from_dict(CLASSIFICATION))
    placed = load_in_browser(model, workload, BATCH_SIZE, SEQ_LEN, model_ref=MODEL,
                             provider=WANTED, hardware=web_hardware())
    for line in placed.fallbacks:
        print(f"web fallback: {line}")
    return placed


def place_inputs(inputs):
    """The web model takes the CPU tensors and sends them to the page."""
    return inputs''',
    "synchronize": '''\
def synchronize() -> None:
    """session.run() in the page resolves once the outputs are read back."""''',
    "cleanup": '''\
def release(model) -> None:
    """Close the page (a private browser is killed) and stop the page server (the export
    stays in the cache)."""
    model.close()''',
    "tolerance": '''\
# onnxruntime-web runs the fp32 export; its kernels (WASM SIMD, WebGPU shaders on
# SwiftShader, WebNN) order and fuse operations differently from PyTorch.
ATOL = 1e-4
RTOL = 1e-3''',
}
