"""Fixed-shape ONNX export of a workload's torch model, cached on disk.

Shared by the backends that run ONNX graphs with static shapes (QNN compiles a graph for
them; onnxruntime-web in the browser takes them too). The model is exported for exactly one
call: the workload's own ``forward(model, inputs)`` is run once on the CPU with a recorder in
place of the model, which captures the named tensor inputs (shapes and dtypes), the constant
keyword arguments the workload adds (``use_cache=False``) and the structure of the outputs.
The model is then exported with ``torch.onnx.export`` (the TorchScript exporter,
``dynamo=False``, inputs by name, no dynamic axes) to ``cache_dir()/onnx/<key>.onnx``; the key
covers the model reference, a hash of its config (and, for a folder, its weight files), the
call's inputs, constants and outputs, and the torch, transformers, onnx and exporter versions.
A JSON file beside each model records what it was exported for. Export in a process of its
own (:mod:`hwaccel.kit.onnx_prepare`) to keep the exporter's memory out of a measured process.

This is public kit API for converted-graph backends (:data:`__all__`): :func:`export_for` (or
:func:`cached_export`) gives an :class:`ExportedModel`, whose :class:`CallSignature` checks a
call's inputs and assembles the graph's outputs in the torch model's layout;
:mod:`hwaccel.kit.onnx_session` runs it in ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import BACKEND, HARNESS, AttributedError

__all__ = ["CONSTANT_TYPES", "OPSET", "CallSignature", "ExportError", "ExportedModel", "Outputs",
           "StaticShapeError", "TensorSpec", "cached_export", "capture", "config_digest",
           "dtype_name", "export_for", "export_key", "export_onnx", "library_versions",
           "onnx_cache_dir", "tensor_specs", "weights_fingerprint"]

EXPORT_FORMAT = 2  # 2: the conversions of hwaccel.kit.onnx_symbolics
OPSET = 17
CONSTANT_TYPES = (type(None), bool, int, float, str)
_KEYED_LIBRARIES = ("torch", "transformers", "diffusers", "onnx")


class ExportError(AttributedError):
    """The workload's model call cannot become one fixed-shape ONNX graph: the exporter (the
    backend's converter) refused it."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="export")


class StaticShapeError(AttributedError):
    """A call whose inputs differ from the ones the graph was exported for: the caller
    assumed dynamic shapes the backend does not expose (hwaccel's own failure)."""

    def __init__(self, message: str):
        super().__init__(HARNESS, message, stage="device")


class Outputs(dict):
    """Named outputs; also readable as attributes (``outputs.logits``), like ``ModelOutput``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor input: its static shape and dtype (``int64``, ``float32``...)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class CallSignature:
    """One model call as the workload makes it, which the exported graph is fixed to.

    ``structure`` is what the model returned: ``mapping`` (a dict or transformers'
    ``ModelOutput``), ``sequence`` (a tuple) or ``tensor``. ``outputs`` lists the returned
    tensors by name, each with ``count`` 0 for one tensor or n for a tuple of n tensors (named
    ``name.0`` ... in the graph); other returned values (caches, nested outputs) are left out,
    as the workloads keep tensors only. ``positional`` names the model's parameters that the
    workload passed by position (a diffusion UNet's ``sample, timestep``), in order, so a call
    to the exported graph may pass them the same way.
    """

    inputs: tuple[TensorSpec, ...]
    constants: tuple[tuple[str, Any], ...]
    outputs: tuple[tuple[str, int], ...]
    structure: str
    positional: tuple[str, ...] = ()

    def graph_output_names(self) -> list[str]:
        """The ONNX output names, in graph order."""
        names = []
        for name, count in self.outputs:
            names.extend([name] if count == 0 else [f"{name}.{i}" for i in range(count)])
        return names

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the signature."""
        return {"inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype}
                           for s in self.inputs],
                "constants": dict(self.constants),
                "outputs": [{"name": n, "count": c} for n, c in self.outputs],
                "structure": self.structure,
                **({"positional": list(self.positional)} if self.positional else {})}

    def describe_inputs(self) -> str:
        """The inputs as ``name int64[2, 16], ...`` for messages."""
        return ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in self.inputs)

    def assemble(self, tensors: Iterable[Any]) -> Any:
        """The graph's outputs (in graph order) shaped like the torch model's return: one
        tensor, a tuple, or :class:`Outputs` by name (a tuple output gathers its parts)."""
        results = iter(tensors)
        if self.structure == "tensor":
            return next(results)
        named = Outputs()
        for name, count in self.outputs:
            named[name] = next(results) if count == 0 else tuple(
                next(results) for _ in range(count))
        return tuple(named.values()) if self.structure == "sequence" else named

    def check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, runtime: str,
                   remedy: str) -> dict[str, Any]:
        """Return the named tensor inputs of a call to the exported graph, after checking
        they are exactly the ones it was exported for (names, shapes, dtypes, constants).

        :param runtime: what runs the graph, for messages (``the QNN model``).
        :param remedy: what to do about other shapes, ending a shape mismatch's message.
        :raises StaticShapeError: more positional inputs than the export's call passed, other
            tensor names or constants, or a tensor of another shape or dtype.
        """
        import torch

        fixed = f"exported for ({self.describe_inputs()})"
        if len(args) > len(self.positional):
            raise StaticShapeError(f"{runtime} got {len(args)} positional input(s), its export's "
                                   f"call passed {len(self.positional)}; it was {fixed}")
        kwargs = {**dict(zip(self.positional, args, strict=False)), **kwargs}
        tensors = {k: v for k, v in kwargs.items() if torch.is_tensor(v)}
        constants = {k: v for k, v in kwargs.items() if k not in tensors}
        if sorted(tensors) != sorted(spec.name for spec in self.inputs):
            raise StaticShapeError(f"{runtime} got tensor inputs {sorted(tensors)} but was "
                                   f"{fixed}")
        if constants != dict(self.constants):
            raise StaticShapeError(f"{runtime} got arguments {constants} but was exported "
                                   f"with {dict(self.constants)}")
        for spec in self.inputs:
            got = (tuple(tensors[spec.name].shape), dtype_name(tensors[spec.name]))
            if got != (spec.shape, spec.dtype):
                raise StaticShapeError(f"input {spec.name!r} is {got[1]}{list(got[0])} but "
                                       f"{runtime}'s graph was {fixed}; {remedy}")
        return tensors


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX file for one call signature, and whether it came from the disk cache."""

    path: Path
    signature: CallSignature
    graph_inputs: tuple[str, ...]
    cache_hit: bool
    seconds: float

    def feeds(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """The graph's inputs, by their names in the graph, from the call's named tensors.

        The exporter may rename an input whose name a value inside the model also has
        (``sample`` becomes ``sample.1`` in a UNet whose forward reassigns ``sample``); such
        an input is fed from the call's tensor of the name without the suffix.
        """
        feeds = {}
        for name in self.graph_inputs:
            source = name if name in tensors else re.sub(r"\.\d+$", "", name)
            if source not in tensors:
                raise AttributedError(HARNESS, f"the exported graph's input {name!r} matches "
                                      f"none of the call's inputs {sorted(tensors)}",
                                      stage="device")
            feeds[name] = tensors[source]
        return feeds


def dtype_name(tensor: Any) -> str:
    """``torch.int64`` -> ``int64``."""
    return str(tensor.dtype).removeprefix("torch.")


def tensor_specs(tensors: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """The specs of named tensors, in their order."""
    return tuple(TensorSpec(name, tuple(int(d) for d in value.shape), dtype_name(value))
                 for name, value in tensors.items())


def _output_layout(output: Any) -> tuple[str, tuple[tuple[str, int], ...]]:
    """The structure and named tensor outputs of a model's return value (``None`` dropped)."""
    import torch

    if torch.is_tensor(output):
        return "tensor", (("output", 0),)
    if isinstance(output, Mapping):
        structure, items = "mapping", list(output.items())
    elif isinstance(output, (tuple, list)):
        structure, items = "sequence", [(str(i), v) for i, v in enumerate(output)]
    else:
        raise ExportError(f"the model returned a {type(output).__name__}; ONNX export "
                          "takes models that return tensors, tuples or dicts of tensors")
    layout = []
    for name, value in items:
        if torch.is_tensor(value):
            layout.append((name, 0))
        elif isinstance(value, (tuple, list)) and value and all(torch.is_tensor(v)
                                                                for v in value):
            layout.append((name, len(value)))
        # anything else (None, a cache, a nested ModelOutput) is not part of the graph
    if not layout:
        raise ExportError("the model returned no tensor")
    return structure, tuple(layout)


class _Recorder:
    """Stands in for the model while the workload makes its call; records every call."""

    def __init__(self, model: Any):
        self.model = model
        self.calls: list[tuple[dict[str, Any], Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.model(*args, **kwargs)
        positional = _parameter_names(self.model, len(args))
        self.calls.append(({**dict(zip(positional, args, strict=True)), **kwargs}, output,
                           positional))
        return output

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def _parameter_names(model: Any, count: int) -> tuple[str, ...]:
    """The names of the first ``count`` parameters of ``model.forward`` (those a call passed
    by position)."""
    if not count:
        return ()
    parameters = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(parameters) < count:
        raise AttributedError(HARNESS, f"the workload passed {count} positional "
                              f"argument(s) to the model, whose forward names "
                              f"{len(parameters)}; hwaccel's ONNX export needs every input "
                              "by name", stage="export")
    return tuple(p.name for p in parameters[:count])


def _signature(kwargs: dict[str, Any], output: Any,
               positional: tuple[str, ...] = ()) -> tuple[CallSignature, dict[str, Any]]:
    import torch

    tensors = {k: v for k, v in kwargs.items() if torch.is_tensor(v)}
    constants = []
    for name, value in kwargs.items():
        if name in tensors:
            continue
        if not isinstance(value, CONSTANT_TYPES):
            raise ExportError(f"model argument {name!r} is a {type(value).__name__}; the ONNX "
                              "export takes tensors and constants (None, bool, int, float, "
                              "str) only")
        constants.append((name, value))
    if not tensors:
        raise ExportError("the workload called the model without tensor inputs")
    structure, outputs = _output_layout(output)
    return CallSignature(inputs=tensor_specs(tensors), constants=tuple(sorted(constants)),
                         outputs=outputs, structure=structure, positional=positional), tensors


def capture(model: Any, forward: Callable[[Any, dict[str, Any]], Any],
            inputs: dict[str, Any]) -> tuple[CallSignature, dict[str, Any]]:
    """Run ``forward(model, inputs)`` on the CPU and return the model call's signature and
    example tensors.

    :raises ExportError: when the model is not a ``torch.nn.Module``, or the workload calls it
        in ways one fixed-shape graph cannot serve (non-constant arguments, several calls that
        differ).
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"the model is a {type(model).__name__}, not a torch.nn.Module; the "
                          "ONNX export takes one module to a fixed-shape ONNX graph")
    recorder = _Recorder(model)
    forward(recorder, inputs)
    if not recorder.calls:
        raise ExportError("the workload's forward never called the model")
    signature, example = _signature(*recorder.calls[0])
    for call in recorder.calls[1:]:
        if _signature(*call)[0] != signature:
            raise ExportError(f"the workload calls the model {len(recorder.calls)} times with "
                              "different inputs; one fixed-shape graph serves one kind of call")
    return signature, example


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_digest(model: Any) -> str:
    """A hash of the model's config (transformers or diffusers), else of its parameter shapes."""
    config = getattr(model, "config", None)
    if hasattr(config, "to_json_string"):
        text = config.to_json_string(use_diff=False)
    elif isinstance(config, Mapping):
        text = json.dumps(dict(config), sort_keys=True, default=str)
    else:
        text = json.dumps([(k, list(v.shape), str(v.dtype))
                           for k, v in model.state_dict().items()])
    return hashlib.sha256(f"{type(model).__qualname__}\n{text}".encode()).hexdigest()


def weights_fingerprint(weights_dir: str | os.PathLike[str] | None) -> list[list[Any]]:
    """Name, size and modification time of each file of a model folder's checkpoint (the
    files :func:`~hwaccel.models.checkpoint_files.checkpoint_files` chooses, which are loaded)."""
    from hwaccel.models.checkpoint_files import checkpoint_files

    if not weights_dir:
        return []
    folder = Path(weights_dir)
    files = checkpoint_files(folder)
    return [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape an export."""
    versions: dict[str, str | None] = {}
    for name in _KEYED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def export_key(model_ref: str, model: Any, signature: CallSignature,
               weights_dir: str | os.PathLike[str] | None = None) -> str:
    """The cache key of an export: everything that changes the graph it would produce."""
    return _digest({"format": EXPORT_FORMAT, "opset": OPSET, "model": model_ref,
                    "config": config_digest(model), "weights": weights_fingerprint(weights_dir),
                    "call": signature.to_dict(), "versions": library_versions()})[:32]


def onnx_cache_dir() -> Path:
    """``hwaccel.kit.paths.cache_dir()/onnx``, created."""
    from hwaccel.kit.paths import cache_dir

    folder = cache_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def export_onnx(model: Any, signature: CallSignature, example: dict[str, Any],
                path: Path) -> tuple[str, ...]:
    """Export ``model`` for exactly ``signature`` to ``path``; return the graph's input names.

    Inputs the traced graph does not use are left out of it by the exporter; the returned
    names say which ones the graph takes.
    """
    import onnx
    import torch

    from hwaccel.kit.onnx_symbolics import register

    register(OPSET)
    names = [spec.name for spec in signature.inputs]
    constants = dict(signature.constants)

    class Fixed(torch.nn.Module):
        """The model called by name with the recorded constants; outputs flattened."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            output = self.model(**dict(zip(names, tensors, strict=True)), **constants)
            if signature.structure == "tensor":
                return (output,)
            if signature.structure == "sequence":
                output = {str(i): v for i, v in enumerate(output)}
            flat = []
            for name, count in signature.outputs:
                flat.extend([output[name]] if count == 0 else list(output[name]))
            return tuple(flat)

    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Fixed().eval(), tuple(example[n] for n in names), str(tmp),
                              input_names=names, output_names=signature.graph_output_names(),
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        graph = onnx.load(str(tmp), load_external_data=False).graph
        graph_inputs = tuple(i.name for i in graph.input)
        for value in graph.input:
            dims = value.type.tensor_type.shape.dim
            if any(not d.HasField("dim_value") for d in dims):
                raise ExportError(f"the exported input {value.name!r} has a dynamic dimension")
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many types; the reason is its message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export of {type(model).__name__} failed: "
                          f"{first[:300]}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return graph_inputs


def cached_export(model: Any, forward: Callable[[Any, dict[str, Any]], Any],
                  inputs: dict[str, Any], *, model_ref: str,
                  weights_dir: str | os.PathLike[str] | None = None,
                  cache: Path | None = None) -> ExportedModel:
    """Return the fixed-shape ONNX export of ``model`` for the workload's call on ``inputs``,
    exporting it only when the cache has none for the same key.

    :param forward: the workload's ``forward(model, inputs)``.
    :param model_ref: the model reference (``tiny:bert``, a hub id, a folder).
    :param weights_dir: the model's folder, whose weight files become part of the key.
    :param cache: the folder of exported models (default ``cache_dir()/onnx``).
    """
    started = time.perf_counter()
    signature, example = capture(model, forward, inputs)
    folder = cache or onnx_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = export_key(model_ref, model, signature, weights_dir)
    path, meta = folder / f"{key}.onnx", folder / f"{key}.json"
    graph_inputs: tuple[str, ...] | None = None
    hit = path.is_file()
    if hit:
        try:
            graph_inputs = tuple(json.loads(meta.read_text(encoding="utf-8"))["graph_inputs"])
        except (OSError, ValueError, KeyError, TypeError):
            hit = False  # a model without its record is exported again
    if not hit or graph_inputs is None:
        graph_inputs = export_onnx(model, signature, example, path)
        record = {"model": model_ref, "key": key, "graph_inputs": list(graph_inputs),
                  "opset": OPSET, "versions": library_versions(), **signature.to_dict()}
        tmp = meta.with_name(f"{meta.name}.partial-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, meta)
    return ExportedModel(path=path, signature=signature, graph_inputs=graph_inputs,
                         cache_hit=hit, seconds=time.perf_counter() - started)


def export_for(model: Any, workload: Any, batch_size: int, seq_len: int, *,
               model_ref: str) -> ExportedModel:
    """The cached fixed-shape export of ``model`` for the workload's call at ``batch_size``
    x ``seq_len`` (the model folder's weight files are part of the key)."""
    inputs = workload.make_inputs(batch_size, seq_len)
    weights_dir = getattr(getattr(workload, "ref", None), "path", None)
    return cached_export(model, workload.forward, inputs, model_ref=model_ref,
                         weights_dir=weights_dir)
