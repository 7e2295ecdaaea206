"""Run a fixed-shape ONNX export (:mod:`hwaccel.kit.onnx_export`) in ONNX Runtime.

The public helper for converted-graph backends that run their graphs through an
``onnxruntime`` execution provider. :func:`open_session` creates an
``onnxruntime.InferenceSession`` on the providers asked for and refuses one that ONNX Runtime
quietly created on another provider (it falls back to the CPU with only a warning), so a CPU
run is never measured as an accelerator's. :class:`OnnxModel` wraps the session so that it is
called like the torch model it came from, with the workload's named inputs
(``model(**inputs, use_cache=False)``): it checks they are exactly the exported shapes, dtypes
and constants, feeds them as NumPy arrays and returns torch tensors in the torch model's
layout (a dict by output name, a tuple, or one tensor). :func:`load_onnx` exports (or finds in
the cache) and opens in one step; it is what a backend's ``place_model`` returns.

A typical backend::

    exported = export_first(request)          # hwaccel.kit.onnx_prepare: in its own process
    if "error" in exported:
        return failure(request, exported["category"], exported["error"])
    place = lambda model: load_onnx(model, workload, batch, seq, model_ref=request.model,
                                    providers=["CPUExecutionProvider"])
    return benchmark_workload(request, place_model=place, place_inputs=lambda x: x,
                              compare_reference=True)

Errors are attributed (:mod:`hwaccel.kit.failures`): a session ONNX Runtime will not create,
or creates on another provider, and an error while running it are the backend's
(:class:`OnnxSessionError`); a call with other shapes than the export's is hwaccel's
(:class:`~hwaccel.kit.onnx_export.StaticShapeError`). onnxruntime and torch are imported inside
the functions only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import BACKEND, AttributedError, stage
from hwaccel.kit.onnx_export import CallSignature, ExportedModel, export_for

__all__ = ["OnnxModel", "OnnxSessionError", "Provider", "load_onnx", "open_session",
           "provider_name"]

Provider = str | tuple[str, Mapping[str, Any]]
"""An execution provider as ``onnxruntime`` takes it: its name, or (name, provider options)."""


class OnnxSessionError(AttributedError):
    """ONNX Runtime could not, or would not, run the graph on the providers asked for: the
    backend's failure."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="session")


def provider_name(provider: Provider) -> str:
    """The name of a provider given as a name or as (name, options)."""
    return provider if isinstance(provider, str) else provider[0]


def open_session(path: str | Path, providers: Sequence[Provider], *,
                 config: Mapping[str, str] | None = None, threads: int | None = None,
                 session_options: Any = None) -> Any:
    """Return an ``onnxruntime.InferenceSession`` for the ONNX file ``path``.

    :param providers: the execution providers in the order ONNX Runtime should try them,
        each a name or (name, provider options); the session must come up on the first.
    :param config: session configuration entries (``add_session_config_entry``), e.g.
        ``{"session.disable_cpu_ep_fallback": "1"}``.
    :param threads: ONNX Runtime's intra-op threads (``None``: its default).
    :param session_options: an ``onnxruntime.SessionOptions`` to start from (default: new).
    :raises OnnxSessionError: when ONNX Runtime fails to create the session, or creates it
        with another first provider than ``providers[0]``.
    """
    import onnxruntime as ort

    if not providers:
        raise ValueError("open_session needs at least one execution provider")
    options = session_options if session_options is not None else ort.SessionOptions()
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    if threads is not None:
        options.intra_op_num_threads = threads
    wanted = provider_name(providers[0])
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options,
            providers=[p if isinstance(p, str) else (p[0], dict(p[1])) for p in providers])
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxSessionError(f"onnxruntime could not create a {wanted} session for "
                               f"{Path(path).name}: {first[:300]}") from exc
    used = list(session.get_providers())
    if not used or used[0] != wanted:
        raise OnnxSessionError(f"onnxruntime created the session on "
                               f"{', '.join(used) or 'no provider'} instead of {wanted}; "
                               "refusing to run a fallback as the device asked for")
    return session


class OnnxModel:
    """An exported model in an ONNX Runtime session, called like the torch model it came
    from.

    :param session: the session (:func:`open_session`).
    :param exported: the export the session runs (its call signature fixes the inputs).
    :param runtime: what runs the graph, for messages (``the ONNX Runtime CPU model``).
    """

    def __init__(self, session: Any, exported: ExportedModel, *,
                 runtime: str = "the ONNX Runtime model"):
        self.session = session
        self.exported = exported
        self.runtime = runtime
        self._output_names = exported.signature.graph_output_names()

    @property
    def signature(self) -> CallSignature:
        """The call the graph was exported for."""
        return self.exported.signature

    @property
    def providers(self) -> list[str]:
        """The execution providers of the session, first the one that runs it."""
        return list(self.session.get_providers())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph on exactly the exported inputs; return outputs shaped like the
        torch model's (a dict of tensors, a tuple, or one tensor)."""
        import torch

        tensors = self.signature.check_call(
            args, kwargs, runtime=self.runtime,
            remedy="the graph has static shapes, so place the model again for these inputs")
        feed = {name: tensor.detach().cpu().contiguous().numpy()
                for name, tensor in self.exported.feeds(tensors).items()}
        with stage("inference", BACKEND):  # the runtime's errors raise from this frame
            results = self.session.run(self._output_names, feed)
        return self.signature.assemble(torch.from_numpy(r) for r in results)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"{self.runtime} is one fixed-shape ONNX graph, called as "
                             f"model(**inputs); it has no {name!r} (generation and other "
                             "methods need the torch model)")

    def __repr__(self) -> str:
        return (f"OnnxModel({self.exported.path.name} on {self.providers[:1]}, "
                f"{self.signature.describe_inputs()})")


def load_onnx(model: Any, workload: Any, batch_size: int, seq_len: int, *, model_ref: str,
              providers: Sequence[Provider], config: Mapping[str, str] | None = None,
              threads: int | None = None, runtime: str = "the ONNX Runtime model",
              ) -> OnnxModel:
    """Export ``model`` for the workload's call at ``batch_size`` x ``seq_len`` (or take the
    cached export) and open it in ONNX Runtime on ``providers``.

    :param workload: the pipeline workload whose ``make_inputs`` and ``forward`` fix the call.
    :param model_ref: the model reference, part of the export's cache key.
    :param providers: as for :func:`open_session`.
    :param config: session configuration entries, as for :func:`open_session`.
    :param threads: ONNX Runtime's intra-op threads.
    :param runtime: what runs the graph, for messages.
    """
    exported = export_for(model, workload, batch_size, seq_len, model_ref=model_ref)
    session = open_session(exported.path, providers, config=config, threads=threads)
    return OnnxModel(session, exported, runtime=runtime)
