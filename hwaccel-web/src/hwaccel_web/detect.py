"""Detection: start the browser, run the probe page, report WebGPU, WebNN and WASM.

One record per onnxruntime-web execution provider (``webgpu``, ``webnn``, ``wasm``), each
available or not with the browser's own answer: the WebGPU adapter (vendor, architecture,
whether it is a fallback adapter such as SwiftShader, features, key limits), a WebNN context
per device type or the error ``createContext()`` raised, and WebAssembly's SIMD and threads.
Without a browser (or Playwright) all three are absent with that reason. Every provider here
computes on the host CPU unless the browser found a real GPU, so they keep ``host-cpu`` as their
compute resource (see :func:`compute_resource`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwaccel import HardwareInfo

NAME = "web"
PROVIDERS = ("webgpu", "webnn", "wasm")
STATIC = Path(__file__).with_name("static")
_PROBE_TIMEOUT_S = 60.0
_TITLES = {"webgpu": "WebGPU", "webnn": "WebNN", "wasm": "WebAssembly"}


def absent(reason: str, details: dict[str, Any]) -> list[HardwareInfo]:
    """All three providers unavailable for the same ``reason``."""
    return [HardwareInfo(backend=NAME, device=provider, name=_TITLES[provider], index=index,
                         available=False, reason=reason, details=details)
            for index, provider in enumerate(PROVIDERS)]


def probe(executable: str) -> tuple[dict[str, Any], str | None]:
    """Run the probe page in a fresh headless browser; return (its answer, browser version)."""
    from hwaccel_web.browser import Browser
    from hwaccel_web.server import PageServer

    with PageServer({"static": STATIC}) as server, \
            Browser(executable, timeout_s=_PROBE_TIMEOUT_S) as browser:
        browser.goto(server.url("static", "index.html"))
        found = browser.evaluate("async (url) => (await import(url)).probe()",
                                 server.url("static", "probe.mjs"), what="the detection probe")
        return found, browser.version


def compute_resource(provider: str, answer: dict[str, Any]) -> str:
    """``host-cpu``, except WebGPU on a hardware (not fallback) adapter: ``webgpu:<vendor>``."""
    if provider == "webgpu" and answer.get("available") and not answer.get("isFallbackAdapter"):
        return f"webgpu:{answer.get('vendor') or 'adapter'}"
    return "host-cpu"


def _webgpu(answer: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    kind = " ".join(p for p in (answer.get("vendor"), answer.get("architecture")) if p)
    name = f"WebGPU {kind or 'adapter'}"
    if answer.get("description"):
        name += f" ({answer['description']})"
    if answer.get("isFallbackAdapter"):
        name += ", fallback adapter"
    features = answer.get("features", [])
    capabilities = ("fp32", *(("fp16",) if "shader-f16" in features else ()))
    return name, capabilities


def records(found: dict[str, Any], details: dict[str, Any]) -> list[HardwareInfo]:
    """The three provider records from the probe's answer."""
    infos = []
    for index, provider in enumerate(PROVIDERS):
        answer = found[provider]
        name, capabilities = _TITLES[provider], ()
        if answer.get("available") and provider == "webgpu":
            name, capabilities = _webgpu(answer)
        elif answer.get("available") and provider == "webnn":
            capabilities = tuple(answer["deviceTypes"])
            name = f"WebNN ({', '.join(capabilities)} contexts)"
        elif answer.get("available"):
            capabilities = ("fp32", *(("simd",) if answer.get("simd") else ()),
                            *(("threads",) if answer.get("threads") else ()))
            name = f"WebAssembly ({', '.join(capabilities[1:]) or 'no SIMD, no threads'})"
        infos.append(HardwareInfo(
            backend=NAME, device=provider, name=name, index=index,
            available=bool(answer.get("available")), reason=answer.get("reason"),
            capabilities=capabilities, details={**details, provider: answer},
            compute_resource=compute_resource(provider, answer),
            converted_weights="fp32", converted_unties_weights=True))  # the cached ONNX export
    return infos


def detect_web() -> list[HardwareInfo]:
    """Detect the browser's WebGPU, WebNN and WASM, or report why none can be used."""
    from hwaccel_web.chromium import find_chromium
    from hwaccel_web.errors import BrowserError
    from hwaccel_web.ortweb import ort_web_source

    executable, how = find_chromium()
    details: dict[str, Any] = {"browser": executable, "browser_found_by": how,
                               "onnxruntime_web": ort_web_source()}
    if executable is None:
        return absent(how, details)
    try:
        import playwright  # noqa: F401 - only whether it is installed
    except ImportError:
        return absent("playwright is not installed (pip install playwright; it drives the "
                      "browser, none is downloaded)", details)
    try:
        found, version = probe(executable)
    except BrowserError as exc:
        return absent(f"{executable} could not be probed: {exc}", details)
    details.update(browser_version=version, user_agent=found.get("userAgent"),
                   cross_origin_isolated=found.get("crossOriginIsolated"),
                   hardware_concurrency=found.get("hardwareConcurrency"))
    return records(found, details)
