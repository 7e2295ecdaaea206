"""A browser page that runs onnxruntime-web on one execution provider, with its page server.

:class:`WebPage` starts the page server (the backend's pages and onnxruntime-web, on
127.0.0.1), opens a page in the run's browser (or a private one,
:func:`hwaccel_web.shared.open_page`) and starts onnxruntime-web there without waiting for
it: the page loads the runtime and creates a first session from a one-operator model
(:func:`starter_model`), which compiles the runtime's WebAssembly, starts its threads and
the provider's device. So a caller can open the page first and prepare the model meanwhile;
:meth:`WebPage.create_session` waits for the runtime, then creates the model's session.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path
from typing import Any

from hwaccel_web.browser import Browser
from hwaccel_web.detect import STATIC
from hwaccel_web.errors import PageError, WebProviderError
from hwaccel_web.shared import open_page

WEBNN_DEVICE_ENV = "HWACCEL_WEBNN_DEVICE_TYPE"
IMPORT = "async ([url, arg]) => (await import(url)).{}(arg)"


def webnn_device_type() -> str:
    """The WebNN device type sessions use: ``HWACCEL_WEBNN_DEVICE_TYPE``, else ``cpu``."""
    return os.environ.get(WEBNN_DEVICE_ENV, "cpu")


@functools.cache
def starter_model() -> str:
    """A one-operator ONNX model (the identity of one float), base64: the page's first
    session, which starts onnxruntime-web and the provider before the model arrives."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "hwaccel-start",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    return base64.b64encode(model.SerializeToString()).decode("ascii")


class WebPage:
    """A page starting onnxruntime-web on ``provider`` with ``threads`` WebAssembly threads;
    call :meth:`close` (or use it as a context manager) to close it and stop its server.

    :param executable: the browser (default: :func:`hwaccel_web.chromium.find_chromium`).
    """

    def __init__(self, provider: str, threads: int, executable: str | None = None):
        from hwaccel_web.ortweb import MODULE, ort_web_dir
        from hwaccel_web.server import PageServer

        self.provider = provider
        self.server = PageServer({"static": STATIC, "ort": ort_web_dir()})
        try:
            self.browser: Browser = open_page(executable)
        except BaseException:
            self.server.close()
            raise
        self.runner = self.server.url("static", "runner.mjs")
        try:
            self.browser.goto(self.server.url("static", "index.html"))
            self.browser.evaluate(IMPORT.format("start"), [self.runner, {
                "ortUrl": self.server.url("ort", MODULE),
                "wasmPaths": f"{self.server.origin}/ort/", "provider": provider,
                "threads": threads, "webnnDeviceType": webnn_device_type(),
                "starterModel": starter_model()}], what="starting onnxruntime-web")
        except BaseException:
            self.close()
            raise

    def create_session(self, model: Path) -> dict[str, Any]:
        """Create the session of the ONNX file ``model`` once the runtime has started;
        return what the page reports (``createMs``, ``startMs``, names, threads...).

        :raises WebProviderError: onnxruntime-web refused the provider or the model (its
            own message).
        """
        self.server.mount("model", model.parent)
        try:
            return self.browser.evaluate(
                IMPORT.format("load"), [self.runner, {"modelUrl": self.server.url(
                    "model", model.name)}], what=f"creating the {self.provider} session")
        except PageError as exc:  # the page threw: onnxruntime-web's own message
            raise WebProviderError(f"onnxruntime-web could not create a {self.provider} "
                                   f"session: {exc}") from None

    def close(self) -> None:
        """Close the page (a private browser is killed) and stop the page server."""
        self.browser.close()
        self.server.close()

    def __enter__(self) -> WebPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
