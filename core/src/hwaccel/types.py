"""The small frozen records that hooks exchange.

Plugins build these with keyword arguments only, so new fields (always with defaults) never
break a plugin. Provenance fields (``plugin``, ``distribution``, ``distribution_version``) are
stamped by the core after a hook returns; whatever a plugin puts there is overwritten.
Every record converts to and from plain JSON-safe dicts (``to_dict``/``from_dict``), which is
how they cross process boundaries and reach ``--json`` output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from hwaccel.kit.taxonomy import Label

T = TypeVar("T", bound="_Record")


class _Record:
    """Mixin: dict round-trip for the frozen dataclasses below."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of every field (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build the record from ``to_dict`` output, ignoring keys it does not know."""
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs = {}
        for key, value in data.items():
            if key not in known:
                continue
            if isinstance(value, list) and "tuple" in str(known[key].type):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class HardwareInfo(_Record):
    """One device (or one absent backend) as a backend plugin detected it.

    An absent backend is reported too: ``available=False`` and ``reason`` says why, so
    "absent" is always explained rather than silent. ``compute_resource`` names the physical
    unit a timed job on this device occupies; the matrix never times two jobs on the same
    unit at once. Devices that compute on the host's cores keep the default ``host-cpu``;
    an accelerator names itself (e.g. ``cuda:0``) and then takes one host core.
    ``converted_weights`` is the precision of the weights of the converted model a backend
    keeps on disk per model (OpenVINO IR, an ONNX export), or ``None`` when it runs the
    PyTorch model as it is; resource estimates count that file's size.
    ``converted_unties_weights`` says that converted model stores tied word embeddings
    twice (the language-model head's transposed copy beside the embedding), as an ONNX
    export does: the weights the device holds are then counted that way.

    How the device is addressed, declared by its backend so the core names no backend:
    ``torch_device`` is the ``torch.device`` string of a device that runs PyTorch modules
    (``cuda:0``, ``mps``, ``cpu``), ``None`` for one that runs converted graphs;
    ``device_string`` is what a device choice returns to the caller (defaults to
    ``torch_device``, else ``device``; OpenVINO writes ``openvino:GPU.0``); ``rank`` orders
    a backend's own devices, lower first (OpenVINO prefers its GPU to its CPU to its NPU).
    """

    backend: str
    device: str
    name: str
    available: bool
    reason: str | None = None
    index: int = 0
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    capabilities: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    compute_resource: str = "host-cpu"
    converted_weights: str | None = None
    converted_unties_weights: bool = False
    torch_device: str | None = None
    device_string: str | None = None
    rank: int = 0
    plugin: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None

    @property
    def address(self) -> str:
        """The device string a device choice returns: ``device_string``, else
        ``torch_device``, else ``device``."""
        return self.device_string or self.torch_device or self.device


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendInfo(_Record):
    """What a backend declares about itself, detected or not (``hwaccel_backend_info``).

    The core reads every backend fact from here, so that it names no backend:

    * ``priority``: the backend's place in the default device order (lower first); ``None``
      keeps it out of the default order (it is used only when named).
    * ``last_resort``: the backend tried after every backend of a priority list, and the
      one that holds the reference copy of a comparison (the host CPU).
    * ``runs_torch``: its devices run PyTorch modules, so their device strings are
      ``torch.device`` strings and a PyTorch module can be placed on them.
    * ``advice``: what a machine needs for this backend, shown when it is absent.
    * ``versions``: distributions whose versions every result on this backend records.
    * ``aliases``: other names that address this backend's devices (a browser backend's
      providers); ``from hwaccel import NAME`` knows them, upper-cased, with the backend's
      own name (the predecessor's platform constants).
    """

    name: str
    description: str = ""
    priority: int | None = None
    last_resort: bool = False
    runs_torch: bool = False
    advice: str = ""
    versions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    plugin: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelRule(_Record):
    """Which models a pipeline takes, in the terms of the TAXONOMY.md reference rule.

    Every field that is set must match (fields are joined by AND, the names within one field
    by OR); a rule with no field set matches nothing.

    * ``rules``: ids of the TAXONOMY.md rule that labelled the model (``encoder``,
      ``generative-lm``, ``image-video``..., :data:`hwaccel.kit.taxonomy.RULE_IDS`).
    * ``families``: the model's family.
    * ``tasks``: auto-model TASK names, any of which the model type is listed under.
    * ``model_types``: transformers ``model_type`` values.
    * ``min_experts``: the least number of experts the config declares.
    """

    rules: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    min_experts: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineInfo(_Record):
    """What a pipeline declares about itself (``hwaccel_pipeline_info``).

    ``takes`` are the labels it takes: a model is this pipeline's when one of the rules
    matches and no matching pipeline has a higher ``precedence`` (a recurrent-state
    language model matches the text pipeline's rule and the state-space pipeline's, whose
    precedence is higher). A pipeline that declares no rule takes the models for which
    TAXONOMY.md's rule names it (the default). ``example_models`` are references that load
    offline and represent the pipeline in the default ``hwaccel matrix``; ``versions`` are
    distributions whose versions its results record. ``composition`` names the roles of the
    parts of a composed reference ``NAME:<part>+<part>`` the pipeline runs (the retrieve-then-
    generate pipeline: retriever, generator): the core resolves such a reference into its
    parts and labels it by the last one; empty when the pipeline runs single models.
    """

    name: str
    description: str = ""
    takes: tuple[LabelRule, ...] = ()
    precedence: int = 0
    example_models: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    composition: tuple[str, ...] = ()
    plugin: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Classification(_Record):
    """What a model is, in the labels of ``TAXONOMY.md``, and which signal decided it.

    ``workload`` is the dotted path (``"package.module:Class"``) of the pipeline's workload:
    the object that loads the model, builds inputs and runs inference for benchmarks and
    generated tests. It is a string so that a classification can cross into a job process.
    """

    model: str
    family: str
    subfamily: str | None = None
    pipeline: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    model_class: str | None = None
    confidence: float = 0.0
    signal: str = "none"
    reason: str = ""
    tasks: tuple[str, ...] = ()
    workload: str | None = None
    plugin: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference and the evidence about what it is (made by
    :func:`hwaccel.models.resolve.resolve_model`; pipelines receive it in ``hwaccel_classify``).

    ``signal`` names where the evidence came from, strongest first: ``config`` (a tiny
    config), ``local`` (a folder's ``config.json``), ``hf-cache``, ``class``, ``task``,
    ``name`` (the name alone), ``none``. ``label`` is the TAXONOMY.md reference label, set
    by the core before pipelines are asked to claim the model. A composition
    (``<pipeline>:<part>+<part>``) holds its parts in ``components``, in the order of the
    pipeline's declared roles.
    """

    spec: str
    kind: str  # tiny | local | alias | hub | composite
    path: str | None = None
    config: dict[str, Any] | None = None
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    model_class: str | None = None
    tasks: tuple[str, ...] = ()
    signal: str = "none"
    evidence: str = ""
    label: Label | None = None
    components: tuple[ModelRef, ...] = ()

    @property
    def is_tiny(self) -> bool:
        """True for ``tiny:`` references, whose weights are random."""
        return self.kind == "tiny"

    @property
    def is_diffusers(self) -> bool:
        """True when the config is a diffusers ``model_index.json`` or model config."""
        return self.config is not None and "_class_name" in self.config

    @property
    def loadable(self) -> bool:
        """True when the weights (or a tiny build) are on this machine: nothing to download.
        A folder with a config but no weight file is not: hwaccel never invents weights; nor
        is one whose checkpoint is broken (an index or a safetensors header)."""
        from hwaccel.models.checkpoint_files import unusable_checkpoint
        from hwaccel.models.resolve import holds_weights

        if self.kind == "composite":
            return all(part.loadable for part in self.components)
        return self.is_tiny or (self.path is not None and holds_weights(self.path)
                                and unusable_checkpoint(self.path) is None)

    def unavailable_message(self) -> str:
        """Why :attr:`loadable` is false, in one line."""
        from hwaccel.models.checkpoint_files import WEIGHT_SUFFIXES, unusable_checkpoint
        from hwaccel.models.resolve import not_cached_message

        problem = unusable_checkpoint(self.path) if self.path is not None else None
        if problem is not None:
            return f"{problem} (the model's own files: hwaccel never repairs weights)"
        if self.path is not None:
            return (f"{self.path} holds no weight file ({', '.join(WEIGHT_SUFFIXES)}), only "
                    "its config: hwaccel runs a model's own weights and never invents them "
                    f"(save them there, or use tiny:{self.model_type or '<model_type>'} for "
                    "a small model with random weights)")
        return not_cached_message(self.spec)

    def load_config(self) -> Any:
        """Return the transformers config object (tiny configs are shrunk; nothing remote).

        A reference without files but with a config (a catalogue's published config) gets
        that config built on the installed transformers' defaults for its model type.
        """
        from transformers import AutoConfig

        from hwaccel.errors import ModelReferenceError
        from hwaccel.models.resolve import not_cached_message

        if self.is_tiny:
            from hwaccel.kit.tiny import tiny_config

            return tiny_config(self.model_type or "")
        if self.path is None and (self.config is None or not self.model_type):
            raise ModelReferenceError(not_cached_message(self.spec))
        if self.path is None:  # a published config (a catalogue's), held to a file's rules
            from hwaccel.models.config_checks import check_sizes

            check_sizes(self.config, f"the published config of {self.spec}")
        try:
            if self.path is None:  # a published config, no files
                return AutoConfig.for_model(self.model_type, **{
                    k: v for k, v in self.config.items() if k != "model_type"})
            return AutoConfig.from_pretrained(self.path, trust_remote_code=False,
                                              local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - transformers' refusal of the user's config
            # (a ValueError, huggingface_hub's StrictDataclassError for a field's type, ...)
            from hwaccel.kit.failures import one_line

            raise ModelReferenceError(f"transformers refuses the config of {self.spec}: "
                                      f"{one_line(exc)}") from None


@dataclass(frozen=True, kw_only=True, slots=True)
class TemplatePart(_Record):
    """One plugin's half of a generated test file.

    A pipeline answers with ``owner="pipeline"``, a Jinja2 ``template`` (the test module body)
    and the ``required_slots`` it expects a backend to fill. A backend answers with
    ``owner="backend"`` and ``snippets``: Python source for each slot it provides. The core
    composes the two halves; a backend missing a required slot is a clear error. A pipeline
    also names ``source``: where its template comes from (``package/file.py.j2``); its
    example models are in its :class:`PipelineInfo`. A backend declares in
    ``exposes`` what its loaded model offers the checks beyond inputs in, outputs out (names
    of :data:`hwaccel.kit.exposure.FEATURES`: the PyTorch module's internals, ``generate``, calls
    of any shape, cache outputs); ``None`` means it runs the PyTorch module itself. A check
    that needs what the backend does not expose is skipped with the reason.
    """

    owner: str
    name: str
    template: str | None = None
    required_slots: tuple[str, ...] = ()
    snippets: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    exposes: tuple[str, ...] | None = None
    plugin: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None


QUANTIZED_PRECISIONS = ("int8", "int4")
"""Precisions that run a quantized model (int8 activations and weights, or weights only, as
the backend records in the row's details): only a device that declares one among its
``capabilities`` is asked for it (a job on any other is ``unsupported``, never a float run
recorded under that name)."""
NATIVE_PRECISION = "native"
"""The precision a device runs when nobody tells it one (OpenVINO's CPU plugin picks bf16 on
a CPU with bf16 instructions; PyTorch runs fp32): the row records what actually ran."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchmarkSettings(_Record):
    """How one benchmark job measures: the method is the same for every backend."""

    batch_size: int = 1
    seq_len: int = 32
    warmup: int = 3
    min_iterations: int = 20
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    threads: int | None = None
    precision: str = "fp32"  # what the caller asks for; the result says what actually ran
    new_tokens: int = 0  # > 0: time greedy generation of this many tokens after a prompt
    # of ``seq_len`` tokens (kit.generation), instead of one forward call
    cache_implementation: str | None = None  # generation only: transformers' cache to ask
    # for ("static": a preallocated StaticCache); None keeps the model's default (dynamic)


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchmarkRequest(_Record):
    """What the core asks a backend to benchmark: one model on one detected device."""

    model: str
    hardware: HardwareInfo
    classification: Classification
    settings: BenchmarkSettings = field(default_factory=BenchmarkSettings)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkRequest:
        """Rebuild the request and its nested records from ``to_dict`` output."""
        return cls(
            model=data["model"],
            hardware=HardwareInfo.from_dict(data["hardware"]),
            classification=Classification.from_dict(data["classification"]),
            settings=BenchmarkSettings.from_dict(data.get("settings", {})),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchmarkResult(_Record):
    """A measured benchmark of one model on one device, or a failure with its category.

    Latencies are milliseconds of one call on a batch of ``batch_size``; ``throughput`` is
    samples per second at the mean latency. Memory fields are filled by the core from the job
    process's kernel high-water mark, not by the plugin. ``max_abs_diff`` is the largest
    absolute difference between the device's outputs and a CPU PyTorch fp32 reference, when
    the backend compared them. ``device_peak_mb`` is an accelerator's own memory high-water
    mark (GPU memory), ``details`` what else the backend wants on record for this run (a
    precision fallback and its reason, whether operators could fall back to the CPU).

    A generation benchmark (``settings.new_tokens > 0``, :mod:`hwaccel.kit.generation`)
    times whole greedy ``generate`` calls: the latency fields are those calls end to end,
    ``seq_len`` is the prompt length and ``new_tokens`` the tokens each row decodes;
    ``ttft_ms`` is the median time to the first new token (the prefill), ``tpot_p50_ms`` and
    ``tpot_p90_ms`` the per-output-token latency over the decode steps of every timed call,
    ``tokens_per_s`` the new tokens of the whole batch per second at the mean call,
    ``token_match`` the share of greedy tokens identical to the CPU PyTorch fp32 reference's,
    and ``kv_cache`` how past keys and values were kept (``dynamic``, ``static``,
    ``stateful``, or ``none: <why>`` for a loop that re-runs the sequence).
    """

    model: str
    backend: str
    device: str
    success: bool
    error: str | None = None
    error_category: str | None = None
    load_time_s: float | None = None
    cold_ms: float | None = None
    iterations: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    stdev_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    cv: float | None = None
    throughput: float | None = None
    batch_size: int = 1
    seq_len: int | None = None
    threads: int | None = None
    precision: str = "fp32"
    output_shapes: dict[str, list[int]] = field(default_factory=dict)
    max_abs_diff: float | None = None
    device_peak_mb: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    baseline_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    load_avg: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    hardware_fingerprint: str | None = None
    wall_time_s: float | None = None
    plugin: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None
    new_tokens: int | None = None
    ttft_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p90_ms: float | None = None
    tokens_per_s: float | None = None
    token_match: float | None = None
    kv_cache: str | None = None
