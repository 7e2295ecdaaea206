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
hashes the model reference, the model's identity (its class, its config and its weights),
the call's input names, dtypes and shapes, its fixed arguments, and the openvino, torch,
transformers and diffusers versions. A second conversion with the same key reads the IR
instead of converting. For ``int8`` and ``int4`` the float IR's weights are then compressed
by NNCF (:mod:`hwaccel_openvino.weights`) and that IR is cached under its own key.

The weights are identified without loading the model where the workload allows it
(:func:`workload_identity`: a ``tiny:`` model by its seed, a checkpoint by its files), so a
cached call never loads the PyTorch model; a model passed in already loaded is identified by
a sample of its weights (:func:`model_identity`).

Nothing here runs PyTorch at inference time: :class:`OpenVINOModel` uses the PyTorch model
only to convert calls whose IR is not cached, and every output it returns was computed by
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel.kit.failures import BACKEND, AttributedError, stage
from hwaccel.types import NATIVE_PRECISION
from hwaccel_openvino.weights import compress, is_compressed

FORMAT = 3  # 3: identity without loading (workload_identity), compressed-weight entries
FIXED_TYPES = (type(None), bool, int, float, str)
# hwaccel precision -> the INFERENCE_PRECISION_HINT asking for it
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
    return {name: _version(name) for name in ("openvino", "torch", "transformers", "diffusers")}


def _version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


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
    """What identifies a loaded model in the cache key: reference, class, config and a sample
    of its weights (:func:`weights_digest`)."""
    return {"model": model_ref, "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "config": config_digest(model), "weights": weights_digest(model)}


def reference_weights(ref: Any) -> dict[str, Any] | None:
    """What identifies the weights a workload's ``load_model`` gives, without loading them.

    A ``tiny:`` model is built from its config with :data:`~hwaccel.kit.tiny.TINY_SEED`, so
    the seed identifies its weights; a checkpoint folder by the names, sizes and modification
    times of its weight files (:func:`hwaccel.kit.onnx_export.weights_fingerprint`). ``None``
    for a reference with neither (a composition, a folder without weight files).
    """
    if ref.is_tiny:
        from hwaccel.kit.tiny import TINY_SEED

        return {"tiny_seed": TINY_SEED}
    from hwaccel.errors import HwaccelError
    from hwaccel.kit.onnx_export import weights_fingerprint

    try:
        files = weights_fingerprint(ref.path)
    except HwaccelError:  # a broken index: loading the model reports it
        return None
    return {"files": files} if files else None


def workload_identity(workload: Any, model_ref: str | None) -> tuple[Any, dict[str, Any]] | None:
    """The model ``workload.load_model()`` would return, identified without loading it.

    :returns: (the workload's skeleton, the identity in the cache key): the class and config
        of ``workload.skeleton()`` (the model on the meta device, nothing allocated) and
        :func:`reference_weights`. ``None`` when the weights cannot be named that way, the
        skeleton cannot be built, or it is not a module with a ``forward`` of its own (a
        pipeline's networks gathered in a ``ModuleDict``): the model is then loaded and
        identified by :func:`model_identity`.
    """
    import torch

    ref = getattr(workload, "ref", None)
    weights = reference_weights(ref) if ref is not None else None
    if weights is None:
        return None
    try:
        skeleton = workload.skeleton()
    except Exception:  # noqa: BLE001 - without a skeleton the model is loaded and hashed
        return None
    if (not isinstance(skeleton, torch.nn.Module)
            or type(skeleton).forward is torch.nn.Module.forward):
        return None
    cls = type(skeleton)
    return skeleton, {"model": model_ref, "class": f"{cls.__module__}.{cls.__qualname__}",
                      "config": config_digest(skeleton), "weights": weights}


def cache_key(identity: dict[str, Any], spec: CallSpec, precision: str = "fp32"
              ) -> tuple[str, dict[str, Any]]:
    """Return the cache key for converting the model ``identity`` names for calls like
    ``spec`` (with the library versions), and the parts it hashes. ``int8`` and ``int4``
    (compressed weights) have keys of their own; float precisions share the float IR's."""
    parts = {"format": FORMAT, **identity, **spec.describe(), "versions": library_versions()}
    if is_compressed(precision):
        parts["weights_compression"] = precision
        parts["versions"]["nncf"] = _version("nncf")
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


def read_cached(folder: Path, key: str) -> tuple[Any, dict[str, Any]] | None:
    """The cached ov.Model under ``folder`` and its ``spec.json`` record, or None when there
    is none. A damaged entry (unreadable, another format or key) is removed."""
    import openvino

    xml, spec_file = folder / "model.xml", folder / "spec.json"
    if not (xml.is_file() and spec_file.is_file()):
        return None
    try:
        saved = json.loads(spec_file.read_text(encoding="utf-8"))
        if saved.get("format") == FORMAT and saved.get("key") == key:
            return openvino.Core().read_model(str(xml)), saved
    except Exception:  # noqa: BLE001 - a damaged entry is converted again
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return None


def store_entry(folder: Path, key: str, parts: dict[str, Any],
           build: Callable[[Path], tuple[Any, dict[str, Any], str]]) -> dict[str, Any]:
    """Build an ov.Model (``build(staging)`` returns it, its output structure and how it was
    converted), save it with its ``spec.json`` record as the entry ``folder``, and return that
    record. The entry appears whole or not at all: it is written into a staging folder first."""
    import openvino

    start = time.perf_counter()
    staging = folder.parent / f".staging-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        ov_model, structure, method = build(staging)
        openvino.save_model(ov_model, str(staging / "model.xml"), compress_to_fp16=False)
        (staging / "model.onnx").unlink(missing_ok=True)
        record = {"format": FORMAT, "key": key, "parts": parts, "method": method,
                  "structure": structure,
                  "inputs": [i.get_any_name() for i in ov_model.inputs],
                  "outputs": [o.get_any_name() for o in ov_model.outputs],
                  "convert_s": round(time.perf_counter() - start, 3)}
        del ov_model  # the saved IR is read back (its weights mapped from the file)
        (staging / "spec.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        try:
            staging.rename(folder)
        except OSError:  # another process stored the same key first
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return record


def load_or_convert(load_source: Callable[[], Any], spec: CallSpec, example: dict[str, Any],
                    identity: dict[str, Any], precision: str = "fp32"
                    ) -> tuple[Any, dict[str, Any], Conversion]:
    """Return (ov.Model, output structure, Conversion) from the cache or a fresh conversion.

    :param load_source: returns the PyTorch model; called only when the float IR for this
        call is not cached.
    :param identity: the model's identity (:func:`model_identity`, :func:`workload_identity`).
    :param precision: ``int8`` and ``int4`` give the IR with weights compressed by NNCF
        (:func:`hwaccel_openvino.weights.compress`), made from the float IR (itself read from
        the cache or converted) and cached under its own key; other precisions the float IR.

    A damaged cache entry is removed and made again.
    """
    import openvino

    start = time.perf_counter()
    key, parts = cache_key(identity, spec, precision)
    folder = cache_root() / key
    cached = read_cached(folder, key)
    if cached is None:
        if is_compressed(precision):
            def build(staging: Path) -> tuple[Any, dict[str, Any], str]:
                float_model, structure, made = load_or_convert(load_source, spec, example,
                                                               identity)
                return compress(float_model, precision), structure, made.method
        else:
            def build(staging: Path) -> tuple[Any, dict[str, Any], str]:
                return convert(load_source(), spec, example, staging)
        saved = store_entry(folder, key, parts, build)
        ov_model = openvino.Core().read_model(str(folder / "model.xml"))
    else:
        ov_model, saved = cached
    return ov_model, saved["structure"], Conversion(
        key=key, path=str(folder / "model.xml"), cached=cached is not None,
        method=saved["method"], seconds=time.perf_counter() - start,
        inputs=tuple(saved["inputs"]), outputs=tuple(saved["outputs"]))


# ---- compiling and running ---------------------------------------------------------------


def compile_config(core: Any, device: str, threads: int | None, precision: str
                   ) -> dict[str, Any]:
    """Compile properties the device supports: latency hint, precision, thread count.

    ``fp32``, ``fp16`` and ``bf16`` set ``INFERENCE_PRECISION_HINT``. ``native`` leaves it
    unset, so the device computes in its own default (bf16 on a CPU with AVX-512 bf16 or AMX,
    else f32; f16 on a GPU). ``int8`` and ``int4`` (compressed weights) leave it unset too:
    the device decompresses the weights inside its kernels and computes activations in its
    own precision, as OpenVINO runs such models when deployed; the row records which.
    """
    if precision not in PRECISIONS and precision != NATIVE_PRECISION \
            and not is_compressed(precision):
        raise ConversionError(f"unknown precision {precision!r} (OpenVINO runs "
                              f"{', '.join((*PRECISIONS, NATIVE_PRECISION))}, int8, int4)")
    try:
        supported = {str(p) for p in core.get_property(device, "SUPPORTED_PROPERTIES")}
    except Exception:  # noqa: BLE001 - a device that lists nothing gets no properties
        supported = set()
    config: dict[str, Any] = {}
    if "PERFORMANCE_HINT" in supported:
        config["PERFORMANCE_HINT"] = "LATENCY"
    if precision in PRECISIONS:
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


class OpenVINOModel:
    """A PyTorch model run by OpenVINO, called exactly like the PyTorch model.

    ``model(**inputs, use_cache=False)`` binds the call to the PyTorch model's signature,
    converts (or reads from the cache) and compiles a graph for that call's shapes the first
    time they are seen, and returns the outputs OpenVINO computed, named as the PyTorch model
    names them. Options that are not tensors are fixed inside each graph. ``generate`` is a
    greedy decoding loop over compiled graphs (:mod:`hwaccel_openvino.generation`), and
    forward hooks are called after each inference call. The PyTorch model's submodules,
    intermediate values and other methods are not available: asking for them raises
    ``AttributeError`` saying so.

    The PyTorch model is either given (``source``) or loaded on first need by
    ``load_source``: a call whose IR is not cached, or code reading :attr:`source`. With a
    ``stand_in`` (the model's skeleton: same class and config, no weights) and its
    ``identity``, a call whose IR is cached never loads it. A model loaded only to convert a
    call is dropped once converted (``load_source`` gives it again if needed); one read
    through :attr:`source` is kept.

    :param source: the PyTorch model (``torch.nn.Module``), used only for converting.
    :param model_ref: the model reference (``tiny:bert``, a folder, a hub id), part of the
        cache key and recorded in ``spec.json``.
    :param device: the OpenVINO device id (``CPU``, ``GPU.0``, ``NPU``).
    :param threads: ``INFERENCE_NUM_THREADS``, where the device takes it.
    :param precision: ``fp32`` (default), ``fp16``, ``bf16`` (``INFERENCE_PRECISION_HINT``),
        ``native`` (the device's own), or ``int8``/``int4`` (weights compressed by NNCF,
        activations in the device's own precision): see :func:`compile_config`.
    :param load_source: returns the PyTorch model, when ``source`` is not given.
    :param stand_in: binds calls and answers :attr:`config` without loading the model.
    :param identity: the model's identity in the cache key (:func:`workload_identity`); by
        default :func:`model_identity` of the model, read at the first conversion.
    """

    def __init__(self, source: Any = None, model_ref: str | None = None, device: str = "CPU",
                 threads: int | None = None, precision: str = "fp32", *,
                 load_source: Callable[[], Any] | None = None, stand_in: Any = None,
                 identity: dict[str, Any] | None = None):
        import openvino

        self.model_ref, self.device, self.threads, self.precision = (
            model_ref, device, threads, precision)
        self.calls: dict[CallSpec, CompiledCall] = {}
        self._source, self._load_source, self._stand_in = source, load_source, stand_in
        self._identity = identity
        self._kept = source is not None  # the caller's model, or one read through .source
        self._released = False
        self._core = openvino.Core()
        self._config = compile_config(self._core, device, threads, precision)
        self._signature: inspect.Signature | None = None
        self._forward_hooks: dict[int, Any] = OrderedDict()  # weak-referable, for handles

    def _load(self) -> Any:
        """The PyTorch model, loaded through ``load_source`` when it is not held."""
        if self._released:
            raise ConversionError("this OpenVINOModel was released")
        if self._source is None and self._load_source is not None:
            self._source = self._load_source()
        return self._source

    @property
    def source(self) -> Any:
        """The PyTorch model (loaded on first access when it was not given), kept from then on;
        ``None`` once released."""
        if self._released:
            return None
        self._kept = True
        return self._load()

    @property
    def blueprint(self) -> Any:
        """The PyTorch model while it is held, else its stand-in (same class and config, no
        weights), else the model, loaded: what code reading the class, config or ``forward``
        signature uses, so that reading them loads nothing when there is a stand-in. (A
        checkpoint's ``generation_config.json`` is read by loading only: the stand-in's
        generation config is the one its config implies.)"""
        if self._source is not None:
            return self._source
        return self._stand_in if self._stand_in is not None else self._load()

    @property
    def config(self) -> Any:
        """The PyTorch model's config (workloads read sizes and token ids from it), from
        :attr:`blueprint`."""
        return getattr(self.blueprint, "config", None)

    @property
    def identity(self) -> dict[str, Any]:
        """The model's identity in the cache key: as given (:func:`workload_identity`: nothing
        loaded), else :func:`model_identity` of the model, loaded for it once."""
        if self._identity is None:
            self._identity = model_identity(self._load(), self.model_ref)
        return self._identity

    def identity_from(self, loaded: Callable[[], Any]) -> dict[str, Any]:
        """:attr:`identity`, computed from ``loaded()`` when it is not known yet: for a caller
        that has the PyTorch model at hand and must not make this model keep it."""
        if self._identity is None:
            self._identity = model_identity(loaded(), self.model_ref)
        return self._identity

    def pytorch_model(self) -> Any:
        """The PyTorch model for a one-off use (an export): the one held, else a fresh load
        that this model does not keep, else :attr:`source`."""
        if self._source is not None:
            return self._source
        return self._load_source() if self._load_source is not None else self.source

    @property
    def core(self) -> Any:
        """The ``openvino.Core`` that compiles this model's graphs."""
        return self._core

    @property
    def compile_properties(self) -> dict[str, Any]:
        """The properties its graphs are compiled with (:func:`compile_config`)."""
        return dict(self._config)

    @property
    def conversions(self) -> list[Conversion]:
        """How each compiled graph was obtained (converted or read from the cache)."""
        return [call.conversion for call in self.calls.values()]

    @property
    def execution_precision(self) -> str | None:
        """The precision the compiled graphs compute in, as the device reports it."""
        return next((call.precision for call in self.calls.values()), None)

    def _compiled_for(self, args: tuple, kwargs: dict[str, Any]
                      ) -> tuple[CompiledCall, dict[str, Any]]:
        binder = self._stand_in if self._stand_in is not None else self._load()
        if self._signature is None and hasattr(binder, "forward"):
            self._signature = _forward_signature(binder)
        spec, tensors = bind_call(binder, args, kwargs, self._signature)
        call = self.calls.get(spec)
        if call is None:
            ov_model, structure, conversion = load_or_convert(
                self._load, spec, tensors, self.identity, self.precision)
            if not self._kept:  # loaded for converting only: free it before compiling
                self._source = None
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
        """Drop the compiled graphs (the stateful decoder's too) and the PyTorch model; calls
        then raise."""
        from hwaccel_openvino.stateful import forget

        forget(self)
        self.calls.clear()
        self._source = self._load_source = self._stand_in = None
        self._released = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        known = self.__dict__.get("_source")
        if known is None:
            known = self.__dict__.get("_stand_in")
        raise AttributeError(
            f"{type(known).__name__}.{name} is not available on OpenVINO: "
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

    The call is intercepted before it runs, so no inference happens here.
    """
    try:
        workload.forward(_CallRecorder(model), inputs)
    except _Captured as call:
        return call.call_args, call.call_kwargs
    raise ConversionError("the workload's forward never calls the model, so there is no call "
                          "to convert")


def place_for_workload(model: Any, workload: Any, inputs: dict[str, Any], *,
                       model_ref: str | None, device: str = "CPU", threads: int | None = None,
                       precision: str = "fp32", load_lazily: bool = False) -> OpenVINOModel:
    """Convert and compile ``model`` for the call ``workload.forward`` makes with ``inputs``.

    Conversion (or the cache read) and compilation happen here, so they count as load time;
    the returned :class:`OpenVINOModel` is then called by ``workload.forward`` as the
    PyTorch model would be.

    :param load_lazily: ``model`` is a zero-argument function that loads the PyTorch model
        (``benchmark_workload(load_lazily=True)`` hands one to ``place_model``). Where the
        workload identifies its model without loading it (:func:`workload_identity`), the
        function is called only when this call's IR is not cached.
    """
    options = {"model_ref": model_ref, "device": device, "threads": threads,
               "precision": precision}
    if load_lazily:
        stand_in, identity = workload_identity(workload, model_ref) or (None, None)
        wrapper = OpenVINOModel(load_source=model, stand_in=stand_in, identity=identity,
                                **options)
    else:
        wrapper = OpenVINOModel(model, **options)
    args, kwargs = capture_call(workload, wrapper, inputs)
    return wrapper.prepare(*args, **kwargs)
