"""What can go wrong in the browser, each failure carrying whose it is
(:mod:`hwaccel.kit.failures`).

The web backend's errors are :class:`~hwaccel.kit.failures.AttributedError` s, so the stages of a
benchmark or a generated test keep their category instead of blaming the frame that raised
them: a browser that dies is a ``crash``, one that stops answering a ``timeout``, and
onnxruntime-web refusing a session or failing a run (or ``torch.onnx.export`` refusing the
graph) is the ``backend``'s.
"""

from __future__ import annotations

from hwaccel.kit.failures import BACKEND, CRASH, TIMEOUT, AttributedError


class BrowserError(AttributedError):
    """The browser could not be found, started or driven (the message says why): a dead
    browser is a ``crash`` unless a subclass says otherwise."""

    def __init__(self, message: str, category: str = CRASH):
        super().__init__(category, message, stage="browser")


class BrowserCrash(BrowserError):
    """The browser or its page died during a call (``crash``)."""


class BrowserHang(BrowserError):
    """A call into the page gave no answer within its time limit; the browser was stopped
    (``timeout``)."""

    def __init__(self, message: str):
        super().__init__(message, TIMEOUT)


class PageError(BrowserError):
    """The code in the page threw; the message is the browser's (``backend``: the page runs
    onnxruntime-web)."""

    def __init__(self, message: str):
        super().__init__(message, BACKEND)


class WebProviderError(AttributedError):
    """onnxruntime-web could not run the model on the provider, or the model could not be
    exported for it (``backend``; the message is the runtime's or the exporter's)."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="web")
