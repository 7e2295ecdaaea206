"""PyTorch models to OpenVINO: conversion, the on-disk IR cache, and the model wrapper.

A call of the PyTorch model (``model(**inputs, use_cache=False)``, or positional arguments as
a diffusers UNet takes them) is bound to the model's ``forward`` signature. Its tensor
arguments become the graph's inputs, in signature order; its other arguments (``None``,
``bool``, ``int``, ``float``, ``str``) are fixed inside the graph. The model is traced by
``openvino.convert_model`` with the call's tensors as ``example_input``; when that fails, it is
exported with ``torch.onnx.export`` (inputs by name, every axis dynamic) and the ONNX file
converted. The graph's outputs are the tensors the model returns, named after the model's own
output keys (``logits``, ``hidden_states.0``, ...), so the wrapper returns what the PyTorch
model would.

A graph serves exactly the input shapes it was traced with. ``convert_model`` marks every
axis dynamic, but tracing records Python-level shape arithmetic as constants: Mamba's
sequence loop and LLaVA's image-token merge give graphs that return wrong shapes or values,
without an error, for other lengths or batch sizes. So each call shape is converted (or read
from the cache) once and compiled with those static shapes; a call with new shapes gets its
own graph.

The IR is saved uncompressed (fp32 weights) under
``hwaccel.kit.paths.cache_dir()/openvino/<key>/model.xml`` with ``spec.json`` beside it. The key
hashes the model reference, the model's class, its config, a sample of its weights, the
call's input names, dtypes and shapes, its fixed arguments, and the openvino, torch,
transformers and diffusers versions. A second conversion with the same key reads the IR
instead of converting.

Nothing here runs PyTorch at inference time: :class:`OpenVINOModel` keeps the PyTorch model
only to convert calls it has not seen yet, and every output it returns was computed by
OpenVINO. What OpenVINO cannot take fails with the converter's or the runtime's message.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import json
import os
import shutil
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import BACKEND, AttributedError, stage

FORMAT = 2
FIXED_TYPES = (type(None), bool, int, float, str)
# element type name of the compiled model -> hwaccel precision name
PRECISIONS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
_WEIGHT_SAMPLE = 65536  # elements hashed per weight tensor (all of smaller tensors)


class ConversionError(AttributedError):
    """A model or a call that OpenVINO cannot take: the backend's failure (one line)."""

    def __init__(self, message: str):
        super().__init__(BACKEND, message, stage="conversion")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The informative part of a (often multi-line) converter message, on one line.

    OpenVINO's tracing errors read "Couldn't get TorchScript module by tracing.", then
    "Exception:", then the cause, then advice: the cause is kept. Operations the frontend
    could not convert are listed after "Summary:": that list is kept.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if "Summary:" in lines:  # the frontend's report of operations it could not convert
        summary = [line.lstrip("- ") for line in lines[lines.index("Summary:") + 1:]]
        lines = ["model wasn't fully converted: " + "; ".join(summary)]
    elif "Exception:" in lines and lines.index("Exception:") + 1 < len(lines):
        at = lines.index("Exception:")
        lines = [lines[0], lines[at + 1]]
    text = " ".join(lines[:2]) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- binding a call to the model's signature ---------------------------------------------


@dataclass(frozen=True)
class CallSpec:
    """The form of one call: tensor inputs (name, dtype, shape) and fixed arguments."""

    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    fixed: tuple[tuple[str, Any], ...]

    @property
    def ranks(self) -> tuple[int, ...]:
        """The rank of each tensor input."""
        return tuple(len(shape) for shape in self.shapes)

    def describe(self) -> dict[str, Any]:
        """JSON-safe description, used in the cache key and ``spec.json``."""
        return {"inputs": [[n, d, list(s)] for n, d, s in zip(self.names, self.dtypes,
                                                               self.shapes, strict=True)],
                "fixed": [[name, repr(value)] for name, value in self.fixed]}


def _forward_signature(model: Any) -> inspect.Signature:
    return inspect.signature(model.forward)


def bind_call(model: Any, args: tuple, kwargs: dict[str, Any],
              signature: inspect.Signature | None = None
              ) -> tuple[CallSpec, dict[str, Any]]:
    """Bind a call of ``model`` to its ``forward`` signature.

    :returns: the call's :class:`CallSpec` and its tensors by name, in signature order.
    :raises ConversionError: when ``model`` is not a ``torch.nn.Module`` or an argument is
        neither a tensor nor a fixed value.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConversionError(f"openvino.convert_model takes a torch.nn.Module; "
                              f"{type(model).__name__} is not one")
    signature = signature or _forward_signature(model)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConversionError(f"{type(model).__name__}.forward does not take this call: "
                              f"{exc}") from None
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise ConversionError(f"{type(model).__name__}.forward takes *{name}; "
                                      "unnamed inputs cannot become graph inputs")
        else:
            arguments[name] = value
    tensors: dict[str, Any] = {}
    fixed: list[tuple[str, Any]] = []
    for name, value in arguments.items():
        if torch.is_tensor(value):
            tensors[name] = value
        elif isinstance(value, FIXED_TYPES):
            fixed.append((name, value))
        else:
            raise ConversionError(
                f"argument {name!r} of {type(model).__name__} is a {type(value).__name__}: a "
                "compiled OpenVINO graph takes tensors, and fixes only None, bool, int, "
                "float or str options")
    if not tensors:
        raise ConversionError(f"the call of {type(model).__name__} passes no tensor, so "
                              "there is no graph input to convert")
    spec = CallSpec(names=tuple(tensors),
                    dtypes=tuple(str(t.dtype).removeprefix("torch.") for t in tensors.values()),
                    shapes=tuple(tuple(t.shape) for t in tensors.values()),
                    fixed=tuple(fixed))
    return spec, tensors


# ---- outputs: flattening the model's return value and rebuilding it ----------------------


class OpenVINOOutput(dict):
    """Named outputs as the PyTorch model returned them: a dict with attribute access.

    Like transformers' ``ModelOutput``: ``out.logits``, ``out["logits"]``, ``out[0]`` (the
    first output) and ``out.to_tuple()``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no output {name!r}; the converted graph returns "
                                 f"{', '.join(self) or 'nothing'}") from None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple[Any, ...]:
        """The outputs in order."""
        return tuple(self.values())


def _flatten(value: Any, name: str, leaves: list[tuple[str, Any]]) -> Any:
    """Append the tensors of ``value`` to ``leaves``; return its tree of leaf indices."""
    import torch

    if torch.is_tensor(value):
        leaves.append((name, value))
        return len(leaves) - 1
    if isinstance(value, (list, tuple)) and value:
        mark = len(leaves)
        trees = [_flatten(v, f"{name}.{i}", leaves) for i, v in enumerate(value)]
        if any(t is None for t in trees):
            del leaves[mark:]
            return None
        return trees
    return None


def flatten_outputs(output: Any) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Return the structure of a model's return value and its tensors as (name, tensor).

    Mappings (``ModelOutput``, diffusers outputs) keep their keys; values that hold anything
    but tensors (a KV cache object, ``None``) are left out, as the pipelines' workloads
    leave them out. A bare tensor is named ``output``; a tuple ``output.0``, ``output.1``...
    """
    leaves: list[tuple[str, Any]] = []
    if isinstance(output, Mapping):
        items = []
        for key, value in output.items():
            tree = _flatten(value, str(key), leaves)
            if tree is not None:
                items.append([str(key), tree])
        return {"kind": "mapping", "items": items}, leaves
    tree = _flatten(output, "output", leaves)
    if tree is None:
        raise ConversionError(f"the model returned a {type(output).__name__}, not tensors")
    return {"kind": "tensor" if isinstance(tree, int) else "sequence", "tree": tree}, leaves


def rebuild_outputs(structure: dict[str, Any], values: list[Any]) -> Any:
    """The inverse of :func:`flatten_outputs` for the graph's output ``values``."""

    def build(tree: Any) -> Any:
        return values[tree] if isinstance(tree, int) else tuple(build(t) for t in tree)

    if structure["kind"] == "mapping":
        return OpenVINOOutput((key, build(tree)) for key, tree in structure["items"])
    return build(structure["tree"])


@functools.cache
def _adapter_class() -> type:
    import torch

    class CallAdapter(torch.nn.Module):
        """``model`` with one call's fixed arguments baked in, returning a flat tuple.

        Its ``forward`` takes exactly the call's tensor inputs by name (the signature
        OpenVINO's converter and the ONNX exporter read) and returns the model's output
        tensors in :func:`flatten_outputs` order, recording that structure.
        """

        def __init__(self, model: Any, spec: CallSpec):
            super().__init__()
            self.model = model
            self.structure: dict[str, Any] | None = None
            self.leaf_names: list[str] = []
            fixed = dict(spec.fixed)
            signature = inspect.Signature([
                inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for name in spec.names])

            def forward(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
                named = signature.bind(*args, **kwargs).arguments
                structure, leaves = flatten_outputs(self.model(**named, **fixed))
                self.structure, self.leaf_names = structure, [n for n, _ in leaves]
                return tuple(t for _, t in leaves)

            forward.__signature__ = signature  # type: ignore[attr-defined]
            self.forward = forward

    return CallAdapter


# ---- the cache key ------------------------------------------------------------------------


def library_versions() -> dict[str, str | None]:
    """Versions that change what conversion produces."""
    versions: dict[str, str | None] = {}
    for name in ("openvino", "torch", "transformers", "diffusers"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def config_digest(model: Any) -> str | None:
    """SHA-256 of the model's config as sorted JSON (transformers or diffusers), or None."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    if callable(getattr(config, "to_dict", None)):
        data = config.to_dict()
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        data = repr(config)
    text = json.dumps(data, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def weights_digest(model: Any) -> str:
    """SHA-256 over every weight's name, dtype, shape and values.

    Tensors of up to 65,536 elements are hashed whole; larger ones by 65,536 evenly strided
    elements, which keeps the cost bounded for big models and still changes with any
    training or fine-tuning.
    """
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().reshape(-1)
            if flat.numel() > _WEIGHT_SAMPLE:
                flat = flat[:: flat.numel() // _WEIGHT_SAMPLE][:_WEIGHT_SAMPLE]
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            if flat.dtype == torch.bfloat16:
                flat = flat.float()
            digest.update(flat.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def model_identity(model: Any, model_ref: str | None) -> dict[str, Any]:
    """What identifies the model in the cache key: reference, class, config and weights."""
    return {"model": model_ref, "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "config": config_digest(model), "weights": weights_digest(model)}


def cache_key(identity: dict[str, Any], spec: CallSpec) -> tuple[str, dict[str, Any]]:
    """Return the cache key for converting the model ``identity`` names for calls like
    ``spec`` (with the library versions), and the parts it hashes."""
    parts = {"format": FORMAT, **identity, **spec.describe(), "versions": library_versions()}
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], parts


def cache_root() -> Path:
    """The folder of cached OpenVINO IR: ``hwaccel.kit.paths.cache_dir()/openvino``."""
    from hwaccel.kit.paths import cache_dir

    return cache_dir() / "openvino"


# ---- conversion ---------------------------------------------------------------------------


def _clone(tensors: dict[str, Any]) -> dict[str, Any]:
    """Ordinary copies of the example tensors (they may be inference-mode tensors)."""
    return {name: t.detach().clone() for name, t in tensors.items()}


def _export_onnx(adapter: Any, spec: CallSpec, example: dict[str, Any], path: Path) -> Any:
    """Export ``adapter`` to ONNX (inputs by name, all axes dynamic) and convert that file."""
    import openvino
    import torch

    dynamic = {name: {axis: f"{name}_{axis}" for axis in range(rank)}
               for name, rank in zip(spec.names, spec.ranks, strict=True)}
    torch.onnx.export(adapter, (), str(path), kwargs=example, input_names=list(spec.names),
                      dynamic_axes=dynamic, dynamo=False)
    return openvino.convert_model(str(path))


def convert(model: Any, spec: CallSpec, example: dict[str, Any], staging: Path
            ) -> tuple[Any, dict[str, Any], str]:
    """Convert ``model`` for calls like ``spec``; return (ov.Model, output structure, method).

    ``openvino.convert_model`` first; on failure the ONNX export into ``staging``. Both
    failing raises :class:`ConversionError` with both messages.
    """
    import openvino
    import torch

    from hwaccel_openvino.extensions import conversion_extensions, masked_attention_as_torch

    adapter = _adapter_class()(model, spec)
    example = _clone(example)
    # the tracer warns that shapes become constants: each graph serves only its traced shapes
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), \
            masked_attention_as_torch():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        try:
            ov_model, method = openvino.convert_model(
                adapter, example_input=example, extension=conversion_extensions()), "direct"
        except Exception as direct:  # noqa: BLE001 - the converter's message is reported
            try:
                ov_model = _export_onnx(adapter, spec, example, staging / "model.onnx")
                method = "onnx"
            except Exception as fallback:  # noqa: BLE001
                raise ConversionError(
                    f"openvino.convert_model failed ({one_line(direct)}); the ONNX export "
                    f"fallback failed too ({one_line(fallback)})") from fallback
        if adapter.structure is None:
            adapter(**example)
    name_inputs(ov_model, spec, by_position=method == "direct")
    names = adapter.leaf_names
    if len(ov_model.outputs) != len(names):
        raise ConversionError(f"the converted graph has {len(ov_model.outputs)} outputs but "
                              f"the model returns {len(names)} tensors ({', '.join(names)})")
    for output, name in zip(ov_model.outputs, names, strict=True):
        output.get_tensor().set_names({name})
    return ov_model, adapter.structure, method


def name_inputs(ov_model: Any, spec: CallSpec, *, by_position: bool) -> None:
    """Give each graph input exactly its argument's name.

    The traced graph has one input per argument in signature order, but the converter may
    name one after an internal value (``46`` for ``pixel_values``); the ONNX path keeps
    the names it was given but drops inputs the graph does not use.
    """
    inputs = list(ov_model.inputs)
    if by_position:
        if len(inputs) != len(spec.names):
            raise ConversionError(f"the converted graph has {len(inputs)} inputs for the "
                                  f"{len(spec.names)} tensors of the call")
        names = list(spec.names)
    else:
        names = [next((n for n in spec.names if n in port.get_names()), None)
                 for port in inputs]
        if None in names:
            raise ConversionError("the ONNX graph has an input that is not an argument")
    for port, name in zip(inputs, names, strict=True):
        port.get_tensor().set_names({name})


@dataclass
class Conversion:
    """What one conversion (or cache hit) produced, for reports and tests."""

    key: str
    path: str
    cached: bool
    method: str
    seconds: float
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def load_or_convert(model: Any, spec: CallSpec, example: dict[str, Any],
                    identity: dict[str, Any]) -> tuple[Any, dict[str, Any], Conversion]:
    """Return (ov.Model, output structure, Conversion) from the cache or a fresh conversion.

    :param identity: :func:`model_identity` of ``model``. A damaged cache entry is removed
        and converted again.
    """
    import openvino

    start = time.perf_counter()
    key, parts = cache_key(identity, spec)
    folder = cache_root() / key
    xml, spec_file = folder / "model.xml", folder / "spec.json"
    core = openvino.Core()
    if xml.is_file() and spec_file.is_file():
        try:
            saved = json.loads(spec_file.read_text(encoding="utf-8"))
            if saved.get("format") == FORMAT and saved.get("key") == key:
                ov_model = core.read_model(str(xml))
                return ov_model, saved["structure"], Conversion(
                    key=key, path=str(xml), cached=True, method=saved["method"],
                    seconds=time.perf_counter() - start, inputs=tuple(saved["inputs"]),
                    outputs=tuple(saved["outputs"]))
        except Exception:  # noqa: BLE001 - a damaged entry is converted again
            pass
        shutil.rmtree(folder, ignore_errors=True)
    staging = cache_root() / f".staging-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        ov_model, structure, method = convert(model, spec, example, staging)
        openvino.save_model(ov_model, str(staging / "model.xml"), compress_to_fp16=False)
        (staging / "model.onnx").unlink(missing_ok=True)
        outputs = [o.get_any_name() for o in ov_model.outputs]
        inputs = [i.get_any_name() for i in ov_model.inputs]
        record = {"format": FORMAT, "key": key, "parts": parts, "method": method,
                  "structure": structure, "inputs": inputs, "outputs": outputs,
                  "convert_s": round(time.perf_counter() - start, 3)}
        (staging / "spec.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        try:
            staging.rename(folder)
        except OSError:  # another process stored the same key first
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    ov_model = core.read_model(str(xml))
    return ov_model, structure, Conversion(
        key=key, path=str(xml), cached=False, method=method,
        seconds=time.perf_counter() - start, inputs=tuple(inputs), outputs=tuple(outputs))


# ---- compiling and running ---------------------------------------------------------------


def compile_config(core: Any, device: str, threads: int | None, precision: str
                   ) -> dict[str, Any]:
    """Compile properties the device supports: latency hint, precision, thread count."""
    if precision not in PRECISIONS:
        raise ConversionError(f"unknown precision {precision!r} "
                              f"(OpenVINO runs {', '.join(PRECISIONS)})")
    try:
        supported = {str(p) for p in core.get_property(device, "SUPPORTED_PROPERTIES")}
    except Exception:  # noqa: BLE001 - a device that lists nothing gets no properties
        supported = set()
    config: dict[str, Any] = {}
    if "PERFORMANCE_HINT" in supported:
        config["PERFORMANCE_HINT"] = "LATENCY"
    if "INFERENCE_PRECISION_HINT" in supported:
        config["INFERENCE_PRECISION_HINT"] = PRECISIONS[precision]
    elif precision != "fp32":
        raise ConversionError(f"OpenVINO device {device} has no INFERENCE_PRECISION_HINT, "
                              f"so {precision} cannot be asked for")
    if threads and "INFERENCE_NUM_THREADS" in supported:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def static_shapes(ov_model: Any, spec: CallSpec) -> None:
    """Fix the graph's inputs to the shapes of the call it was converted for."""
    shapes = dict(zip(spec.names, spec.shapes, strict=True))
    ov_model.reshape({port.get_any_name(): list(shapes[port.get_any_name()])
                      for port in ov_model.inputs})


@dataclass
class CompiledCall:
    """One compiled graph: the call shape it serves, its infer request and output layout."""

    spec: CallSpec
    compiled: Any
    request: Any
    structure: dict[str, Any]
    conversion: Conversion

    def run(self, tensors: dict[str, Any]) -> Any:
        """Run the graph on ``tensors`` (torch, by name) and rebuild the model's outputs."""
        import torch

        feed = [tensors[name].detach().cpu().contiguous().numpy()
                for name in self.conversion.inputs]
        with stage("inference", BACKEND):  # the runtime's checks raise from this frame
            results = self.request.infer(feed)
        values = [torch.from_numpy(value) for value in results.to_tuple()]
        return rebuild_outputs(self.structure, values)

    @property
    def precision(self) -> str:
        """The precision the compiled graph executes in (``fp32``, ``bf16``, ``fp16``)."""
        try:
            hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        except Exception:  # noqa: BLE001 - devices that do not say run what they were given
            return "fp32"
        name = str(hint.get_type_name()) if hasattr(hint, "get_type_name") else str(hint)
        return {v: k for k, v in PRECISIONS.items()}.get(name, name)


@dataclass(eq=False)
class OpenVINOModel:
    """A PyTorch model run by OpenVINO, called exactly like the PyTorch model.

    ``model(**inputs, use_cache=False)`` binds the call to the PyTorch model's signature,
    converts (or reads from the cache) and compiles a graph for that call's shapes the first
    time they are seen, and returns the outputs OpenVINO computed, named as the PyTorch model
    names them. Options that are not tensors are fixed inside each graph. ``generate`` is a
    greedy decoding loop over compiled graphs (:mod:`hwaccel_openvino.generation`), and
    forward hooks are called after each inference call. The PyTorch model's submodules,
    intermediate values and other methods are not available: asking for them raises
    ``AttributeError`` saying so. The model's identity in the cache key (config and weights)
    is read once, at the first conversion.

    :param source: the PyTorch model (``torch.nn.Module``), kept only for converting.
    :param model_ref: the model reference (``tiny:bert``, a folder, a hub id), part of the
        cache key and recorded in ``spec.json``.
    :param device: the OpenVINO device id (``CPU``, ``GPU.0``, ``NPU``).
    :param threads: ``INFERENCE_NUM_THREADS``, where the device takes it.
    :param precision: ``fp32`` (default), ``fp16`` or ``bf16``: ``INFERENCE_PRECISION_HINT``.
    """

    source: Any
    model_ref: str | None = None
    device: str = "CPU"
    threads: int | None = None
    precision: str = "fp32"
    calls: dict[CallSpec, CompiledCall] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        import openvino

        self._core = openvino.Core()
        self._config = compile_config(self._core, self.device, self.threads, self.precision)
        self._signature = _forward_signature(self.source) if hasattr(
            self.source, "forward") else None
        self._identity: dict[str, Any] | None = None
        self._forward_hooks: dict[int, Any] = OrderedDict()  # weak-referable, for handles

    @property
    def config(self) -> Any:
        """The PyTorch model's config (workloads read sizes and token ids from it)."""
        return getattr(self.source, "config", None)

    @property
    def conversions(self) -> list[Conversion]:
        """How each compiled graph was obtained (converted or read from the cache)."""
        return [call.conversion for call in self.calls.values()]

    @property
    def execution_precision(self) -> str | None:
        """The precision the compiled graphs run in, as the device reports it."""
        return next((call.precision for call in self.calls.values()), None)

    def _compiled_for(self, args: tuple, kwargs: dict[str, Any]
                      ) -> tuple[CompiledCall, dict[str, Any]]:
        if self.source is None:
            raise ConversionError("this OpenVINOModel was released")
        spec, tensors = bind_call(self.source, args, kwargs, self._signature)
        call = self.calls.get(spec)
        if call is None:
            if self._identity is None:
                self._identity = model_identity(self.source, self.model_ref)
            ov_model, structure, conversion = load_or_convert(self.source, spec, tensors,
                                                              self._identity)
            with stage("compilation", BACKEND):  # shape inference and the device plugin
                static_shapes(ov_model, spec)
                compiled = self._core.compile_model(ov_model, self.device, self._config)
                request = compiled.create_infer_request()
            call = CompiledCall(spec=spec, compiled=compiled, request=request,
                                structure=structure, conversion=conversion)
            self.calls[spec] = call
        return call, tensors

    def prepare(self, *args: Any, **kwargs: Any) -> OpenVINOModel:
        """Convert and compile for calls shaped like this one, without running it."""
        self._compiled_for(args, kwargs)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the model's forward on OpenVINO; outputs are torch tensors by output name."""
        call, tensors = self._compiled_for(args, kwargs)
        output = call.run(tensors)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, output)
            if replaced is not None:
                output = replaced
        return output

    def register_forward_hook(self, hook: Any) -> Any:
        """Call ``hook(model, args, output)`` after every inference call, as torch modules do.

        :returns: a handle whose ``remove()`` unregisters the hook.
        """
        from torch.utils.hooks import RemovableHandle

        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """Greedy decoding on OpenVINO (see :func:`hwaccel_openvino.generation.greedy`)."""
        from hwaccel_openvino.generation import greedy

        return greedy(self, *args, **kwargs)

    def release(self) -> None:
        """Drop the compiled graphs and the PyTorch model."""
        self.calls.clear()
        self.source = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        source = self.__dict__.get("source")
        raise AttributeError(
            f"{type(source).__name__}.{name} is not available on OpenVINO: "
            "OpenVINOModel runs the converted forward graph and a greedy generate only")


# ---- placing a workload's model ----------------------------------------------------------


class _Captured(Exception):  # noqa: N818 - control flow, never escapes capture_call
    def __init__(self, args: tuple, kwargs: dict[str, Any]):
        super().__init__("captured")
        self.call_args, self.call_kwargs = args, kwargs


class _CallRecorder:
    """Stands in for the model during one workload call and records how it is called."""

    def __init__(self, model: Any):
        self._model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def capture_call(workload: Any, model: Any, inputs: dict[str, Any]
                 ) -> tuple[tuple, dict[str, Any]]:
    """Return the (args, kwargs) of the first call ``workload.forward`` makes of ``model``.

    The call is intercepted before it runs, so no PyTorch inference happens here.
    """
    try:
        workload.forward(_CallRecorder(model), inputs)
    except _Captured as call:
        return call.call_args, call.call_kwargs
    raise ConversionError(f"the workload's forward never calls {type(model).__name__}, so "
                          "there is no call to convert")


def place_for_workload(model: Any, workload: Any, inputs: dict[str, Any], *,
                       model_ref: str | None, device: str = "CPU", threads: int | None = None,
                       precision: str = "fp32") -> OpenVINOModel:
    """Convert and compile ``model`` for the call ``workload.forward`` makes with ``inputs``.

    Conversion (or the cache read) and compilation happen here, so they count as load time;
    the returned :class:`OpenVINOModel` is then called by ``workload.forward`` as the
    PyTorch model would be.
    """
    args, kwargs = capture_call(workload, model, inputs)
    return OpenVINOModel(model, model_ref=model_ref, device=device, threads=threads,
                         precision=precision).prepare(*args, **kwargs)
