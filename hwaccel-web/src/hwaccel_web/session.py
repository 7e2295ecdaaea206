"""A model in a browser page: its fixed-shape ONNX export run by onnxruntime-web.

:func:`load_in_browser` exports the model for the workload's call (cached, through
:mod:`hwaccel.kit.onnx_export`), opens a page with onnxruntime-web
(:class:`~hwaccel_web.page.WebPage`,
in the run's shared browser or a private one outside a run) or takes over one already
opened, and creates the session there on exactly one execution provider, so a WebGPU result is
never a silent WASM run. Without a named provider it walks the fallback chain WebGPU → WebNN →
WASM (:data:`CHAIN`), skipping a provider that detection found unavailable or whose session the
browser refused, and records each step with the browser's reason in :attr:`WebModel.fallbacks`.

:class:`WebModel` is called like the torch model with the workload's named inputs; it checks
they are the exported shapes, sends them to the page (only when they changed since the last
call), runs the session once, and returns torch tensors named like the torch model's outputs.
Each call is timed in the page with ``performance.now()`` (:class:`PageTimer` hands that time
to the core's measurement loop).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from typing import Any

from hwaccel import HardwareInfo
from hwaccel.errors import UsageError
from hwaccel.kit.onnx_export import CallSignature, ExportedModel, ExportError, export_for
from hwaccel_web.detect import PROVIDERS
from hwaccel_web.errors import PageError, WebProviderError
from hwaccel_web.page import IMPORT, WebPage

CHAIN = ("webgpu", "webnn", "wasm")
_ORT_DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16",
               "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8",
               "uint8": "uint8", "bool": "bool"}


def default_threads() -> int:
    """WebAssembly threads when none are asked for: the physical cores (at least 1)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def choose_provider(infos: Sequence[HardwareInfo], wanted: str | None = None
                    ) -> tuple[list[str], list[str]]:
    """Return (providers to try in order, one line per provider skipped with its reason).

    ``wanted`` names one provider: only it is tried, if detection found it available.
    Otherwise the available providers of :data:`CHAIN` are tried in its order.
    """
    if wanted is not None and wanted not in PROVIDERS:
        raise UsageError(f"unknown web provider {wanted!r} (known: "
                               f"{', '.join(PROVIDERS)})")
    by_name = {info.device: info for info in infos}
    order, skipped = [], []
    for provider in (wanted,) if wanted else CHAIN:
        info = by_name.get(provider)
        if info is not None and info.available:
            order.append(provider)
        else:
            reason = info.reason if info is not None else "not detected"
            skipped.append(f"{provider}: unavailable — {reason}")
    return order, skipped


def _digest(payload: dict[str, Any]) -> str:
    hashed = hashlib.blake2b(digest_size=16)
    for name in sorted(payload):
        item = payload[name]
        hashed.update(f"{name}:{item['dtype']}:{item['dims']}:".encode())
        hashed.update(item["data"].encode("ascii"))
    return hashed.hexdigest()


class PageTimer:
    """The core's per-call timer, read from the page: ``performance.now()`` around one
    ``session.run()`` in the browser (the outputs read back included)."""

    name = "performance.now"

    def __init__(self) -> None:
        self.model: WebModel | None = None

    def start(self) -> None:
        """The page starts its own clock when the call arrives."""

    def stop(self) -> float:
        """The milliseconds the page measured for the call just made."""
        if self.model is None or self.model.last_ms is None:
            raise WebProviderError("no call was timed in the page")
        return self.model.last_ms


class WebModel:
    """An exported model in an onnxruntime-web session in a browser page.

    Built by :func:`load_in_browser`; call :meth:`close` (or use it as a context manager) to
    close its page (a private browser is killed) and stop the page server.
    """

    def __init__(self, page: WebPage, exported: ExportedModel, session: dict[str, Any],
                 fallbacks: list[str]):
        self.page = page
        self.browser = page.browser
        self.exported = exported
        self.provider = page.provider
        self.session = session
        self.fallbacks = fallbacks
        self.last_ms: float | None = None
        self._sent: str | None = None

    @property
    def signature(self) -> CallSignature:
        """The call the graph was exported for."""
        return self.exported.signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the session once on exactly the exported inputs; return outputs shaped like
        the torch model's (a dict of tensors, a tuple, or one tensor)."""
        tensors = self.signature.check_call(args, kwargs, runtime="the web model",
                                            remedy="load it again for these inputs")
        payload = {}
        for name, tensor in self.exported.feeds(tensors).items():
            array = tensor.detach().cpu().contiguous().numpy()
            payload[name] = {"dtype": _ORT_DTYPES[str(array.dtype)], "dims": list(array.shape),
                             "data": base64.b64encode(array.tobytes()).decode("ascii")}
        key = _digest(payload)
        try:
            answer = self.browser.evaluate(
                IMPORT.format("run"),
                [self.page.runner, {"key": key,
                                    "inputs": None if key == self._sent else payload}],
                what=f"a {self.provider} run")
        except PageError as exc:  # the page threw: onnxruntime-web's own message
            raise WebProviderError(f"onnxruntime-web failed a {self.provider} run: "
                                   f"{exc}") from None
        self._sent = key
        self.last_ms = float(answer["ms"])
        return self._outputs(answer["outputs"])

    def _outputs(self, found: dict[str, Any]) -> Any:
        import numpy as np
        import torch

        def tensor(name: str) -> Any:
            item = found[name]
            array = np.frombuffer(base64.b64decode(item["data"]), dtype=item["dtype"]
                                  if item["dtype"] != "bool" else np.bool_)
            return torch.from_numpy(array.reshape(item["dims"]).copy())

        return self.signature.assemble(tensor(name)
                                       for name in self.signature.graph_output_names())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"a web model is one fixed-shape ONNX graph in the browser, called "
                             f"as model(**inputs); it has no {name!r} (generation and other "
                             "methods need the torch model)")

    def close(self) -> None:
        """Close the page (killing a private browser) and stop the page server."""
        self.page.close()

    def __enter__(self) -> WebModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"WebModel({self.exported.path.name} on {self.provider}, "
                f"{self.signature.describe_inputs()})")


def load_in_browser(model: Any, workload: Any, batch_size: int, seq_len: int, *,
                    model_ref: str, provider: str | None = None, threads: int | None = None,
                    hardware: Sequence[HardwareInfo] | None = None,
                    executable: str | None = None, page: WebPage | None = None) -> WebModel:
    """Export ``model`` for the workload's call at ``batch_size`` x ``seq_len`` (or take the
    cached export) and open it in a browser page with onnxruntime-web.

    :param provider: ``webgpu``, ``webnn`` or ``wasm``; None walks the fallback chain.
    :param threads: WebAssembly threads (default: the physical cores).
    :param hardware: the web backend's detection records (default: detect now).
    :param executable: the browser (default: :func:`hwaccel_web.chromium.find_chromium`).
    :param page: a page already starting onnxruntime-web on ``provider`` (opened while the
        model was prepared); the model takes it over.
    :raises WebProviderError: the exporter refused the model, or no provider could create a
        session; the message lists each provider tried or skipped with the browser's reason.
    :raises BrowserError: the browser could not start, crashed or hung.
    """
    if hardware is None:
        from hwaccel_web.detect import detect_web

        hardware = detect_web()
    order, fallbacks = choose_provider(hardware, provider)
    try:
        exported = export_for(model, workload, batch_size, seq_len, model_ref=model_ref)
    except ExportError as exc:  # the exporter refused the graph: the backend's failure
        raise WebProviderError(str(exc)) from exc
    threads = threads or default_threads()
    for name in order:
        opened = page if page is not None and page.provider == name \
            else WebPage(name, threads, executable)
        try:
            session = opened.create_session(exported.path)
        except WebProviderError as exc:
            opened.close()
            if provider is not None:
                raise
            fallbacks.append(f"{name}: session refused — {exc}")
            continue
        except BaseException:
            opened.close()
            raise
        return WebModel(opened, exported, session, fallbacks)
    raise WebProviderError("no web provider can run the model: " + "; ".join(fallbacks))
