"""Resource estimates per (model, device, precision, batch, sequence length), by phase.

Each estimate combines what the model needs (:mod:`hwaccel.estimates.footprint`: parameters counted
on
the meta device, the KV cache, activations and logits, the checkpoint on disk) with what the
device's runtime costs, measured (:mod:`hwaccel.estimates.calibration`). Phases, in MiB of the job's
peak resident memory:

* ``load``: the runtime baseline once loaded, the fp32 model on the CPU and the extra copies
  of the weights the backend keeps (a compiled graph);
* ``inference``: one call of the workload, as ``hwaccel benchmark`` measures it: the loaded
  model, the runtime's first-call baseline and the call's activations and logits;
* ``generation`` (generative models): inference plus the KV cache of ``seq_len`` tokens (a
  state-space model's fixed recurrent state instead).

Devices with memory of their own (GPUs) also get ``device_peak_mb``: the device's measured
baseline, the weights at the precision it runs, activations and the cache.

**The history refines the estimate**: when the DuckDB history holds a successful
measurement of the same model on the same device at the same precision, its peak replaces
the estimate (``source: history``), moved by the computed activations when the batch size
or sequence length differ; ``basis`` always says which figure came from where.

An estimate also gives the disk (checkpoint plus the converted model a backend caches),
the CPU cores a job uses, the largest batch that fits the free memory, and whether batch
``batch_size`` fits now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwaccel.estimates.calibration import (
    MIB,
    Calibration,
    Calibrator,
    computes_on_host,
    device_label,
    has_own_memory,
    run_precision,
    run_weight_bytes,
    with_helpers,
)
from hwaccel.estimates.footprint import DTYPE_BYTES, Footprint, footprint_of
from hwaccel.hardware.detection import DetectionReport
from hwaccel.plugins import Plugins
from hwaccel.types import Classification, HardwareInfo, ModelRef

#: longest a model's footprint may take to compute (its skeleton built on the meta device):
#: the config checks bound every size, but modules built one per expert (Switch
#: Transformers) still multiply; published models take under a few seconds
FOOTPRINT_SECONDS = 30


class _TooLong(BaseException):
    """Raised by :func:`_time_limit` (a BaseException: no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """End the block with :class:`_TooLong` once ``seconds`` have passed, checked each time
    this thread registers a module parameter (what a skeleton's build is made of).

    The check raises at a point of the build where any constructor may raise, never from a
    signal in the middle of arbitrary code (which can land in a weakref callback, where it is
    ignored, or leave a library's state half-changed)."""
    import threading
    import time

    from torch.nn.modules.module import register_module_parameter_registration_hook

    deadline = time.monotonic() + seconds
    thread = threading.get_ident()

    def check(module: Any, name: str, parameter: Any) -> None:
        if threading.get_ident() == thread and time.monotonic() > deadline:
            raise _TooLong

    handle = register_module_parameter_registration_hook(check)
    try:
        yield
    finally:
        handle.remove()


#: settings of a default estimate, the same as ``hwaccel benchmark``'s defaults
DEFAULT_BATCH = 1
DEFAULT_SEQ_LEN = 32


@dataclass(frozen=True)
class ResourceEstimate:
    """What one model needs on one device (MiB unless named otherwise); see the module
    docstring for the phases. ``fits`` is ``None`` when it cannot be decided (no measured
    runtime baseline), with ``reason`` saying why."""

    model: str
    backend: str
    device: str
    precision: str
    batch_size: int
    seq_len: int
    parameters: int
    weights_mb: float
    host_weights_mb: float
    extra_copies: float
    activations_mb: float
    kv_cache_mb: float
    state_mb: float
    runtime_mb: float | None
    load_peak_mb: float | None
    inference_peak_mb: float | None
    generation_peak_mb: float | None
    device_peak_mb: float | None
    disk_mb: float | None
    cpu_cores: int
    max_batch_size: int | None
    memory_available_mb: float | None
    device_memory_available_mb: float | None
    fits: bool | None
    reason: str
    source: str
    basis: tuple[str, ...] = field(default=())

    @property
    def peak_mb(self) -> float | None:
        """The largest phase of resident memory (``None`` without a measured baseline)."""
        phases = [p for p in (self.load_peak_mb, self.inference_peak_mb,
                              self.generation_peak_mb) if p is not None]
        return max(phases) if phases else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, with the phases grouped."""
        data = dataclasses.asdict(self)
        data["basis"] = list(self.basis)
        data["peak_mb"] = self.peak_mb
        data["phases"] = {"load": self.load_peak_mb, "inference": self.inference_peak_mb,
                          "generation": self.generation_peak_mb}
        return data


def _host_records(report: DetectionReport) -> list[HardwareInfo]:
    """The available devices of the last-resort backends (the host CPU)."""
    return [info for backend in report.backend_facts().last_resort_names()
            for info in report.available(backend)]


def host_memory(report: DetectionReport) -> tuple[float | None, float | None]:
    """(available, total) host memory in MiB, from the last resort's detection (the CPU's),
    else psutil."""
    for info in _host_records(report):
        if info.memory_available_bytes is not None:
            return (info.memory_available_bytes / MIB,
                    (info.memory_total_bytes or 0) / MIB or None)
    import psutil

    memory = psutil.virtual_memory()
    return memory.available / MIB, memory.total / MIB


def host_cores(report: DetectionReport) -> int:
    """The host's physical cores: the threads a benchmark on the host uses by default."""
    for info in _host_records(report):
        cores = info.details.get("physical_cores")
        if isinstance(cores, int) and cores > 0:
            return cores
    import psutil

    return psutil.cpu_count(logical=False) or 1


class Estimator:
    """Estimates resources of models on detected devices (see the module docstring).

    :param db_path: the DuckDB history (measured peaks refine estimates; calibrations are
        looked up there first); ``None`` to ignore history.
    :param measure: measure runtime baselines that neither the history nor the cache holds
        (a few seconds per device, once); without it such estimates have no baseline.
    :param on_measure: called with (example model, device) before each measurement.
    """

    def __init__(self, plugins: Plugins, report: DetectionReport, *,
                 db_path: Path | None = None, measure: bool = True, timeout_s: float = 300.0,
                 on_measure: Callable[[str, str], None] | None = None):
        self.plugins = plugins
        self.report = report
        self.db_path = db_path
        self.calibrator = Calibrator(plugins, report, lambda m: self.footprint(m),
                                     db_path=db_path, measure=measure, timeout_s=timeout_s,
                                     on_measure=on_measure)
        self._refs: dict[str, ModelRef] = {}
        self._classifications: dict[str, Classification] = {}
        self._workloads: dict[str, Any] = {}
        self._footprints: dict[tuple[str, int], Footprint] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}

    # ---- the model -------------------------------------------------------------------

    def ref(self, model: str) -> ModelRef:
        """The resolved reference; a hub id with no local files gets the published config
        of the pipelines' catalogue when one lists it (:mod:`hwaccel.models.catalogue`).

        :raises ModelReferenceError: a malformed reference or a broken ``config.json``.
        """
        if model not in self._refs:
            from hwaccel.models.catalogue import with_catalogue_config
            from hwaccel.models.resolve import resolve_model

            self._refs[model] = with_catalogue_config(resolve_model(model), self.plugins)
        return self._refs[model]

    def classification(self, model: str) -> Classification:
        """The model's classification (classified once)."""
        if model not in self._classifications:
            from hwaccel.models.classify import classify_ref

            self._classifications[model] = classify_ref(self.ref(model),
                                                        self.plugins).classification
        return self._classifications[model]

    def footprint(self, model: str, seq_len: int = DEFAULT_SEQ_LEN) -> Footprint:
        """The model's footprint for calls of ``seq_len`` (computed once).

        :raises ModelReferenceError: no config of the model is on this machine or in a
            catalogue.
        :raises HwaccelError: the model has no workload (no pipeline runs it), or its
            config cannot be read, or the model refuses to be built from it (heads that do
            not divide the width where the architecture needs it).
        """
        key = (model, seq_len)
        if key not in self._footprints:
            ref = self.ref(model)
            if ref.config is None and not ref.is_tiny and ref.kind != "composite":
                from hwaccel.errors import ModelReferenceError
                from hwaccel.models.resolve import not_cached_message

                raise ModelReferenceError(f"cannot estimate {model!r} without its config: "
                                          f"{not_cached_message(model)}; no pipeline "
                                          "catalogue lists it either")
            like = next((f for (m, _), f in self._footprints.items() if m == model), None)
            try:
                with _time_limit(FOOTPRINT_SECONDS):
                    self._footprints[key] = footprint_of(self.workload(model), seq_len,
                                                         like=like)
            except _TooLong:
                from hwaccel.errors import ModelReferenceError

                raise ModelReferenceError(
                    f"{model} is too large to count: building it on the meta device took "
                    f"over {FOOTPRINT_SECONDS} s (its config declares too many layers or "
                    "experts to estimate)") from None
            except (ValueError, TypeError, ArithmeticError, RuntimeError, IndexError) as exc:
                if ref.is_tiny:  # hwaccel's own tiny config: not the user's to fix
                    raise
                from hwaccel.errors import ModelReferenceError
                from hwaccel.kit.failures import one_line

                raise ModelReferenceError(f"cannot build {model} from its config: "
                                          f"{one_line(exc)}") from None
        return self._footprints[key]

    def workload(self, model: str) -> Any:
        """The model's prepared workload (made once)."""
        if model not in self._workloads:
            from hwaccel.kit.workloads import workload_for

            workload = workload_for(self.ref(model), self.classification(model))
            workload.prepare()
            self._workloads[model] = workload
        return self._workloads[model]

    def remember(self, model: str, *, ref: ModelRef | None = None,
                 classification: Classification | None = None) -> None:
        """Use this reference (with the caller's evidence) or classification for ``model``."""
        if ref is not None:
            self._refs[model] = ref
        if classification is not None:
            self._classifications[model] = classification

    def devices(self, backends: Iterable[str] | None = None) -> list[HardwareInfo]:
        """The available devices of ``backends`` (every backend when ``None``)."""
        wanted = set(backends) if backends is not None else None
        return [h for h in self.report.hardware
                if h.available and (wanted is None or h.backend in wanted)]

    # ---- estimates -------------------------------------------------------------------

    def estimate_all(self, models: list[str], devices: list[HardwareInfo], *,
                     batch_size: int = DEFAULT_BATCH, seq_len: int = DEFAULT_SEQ_LEN,
                     precision: str = "fp32") -> list[ResourceEstimate]:
        """Estimates of every model on every device, calibrations measured in one go."""
        pipelines = {self.classification(m).pipeline for m in models}
        self.calibrator.prepare([(d, p) for d in devices for p in pipelines if p])
        return [self.estimate(m, d, batch_size=batch_size, seq_len=seq_len,
                              precision=precision) for m in models for d in devices]

    def estimate(self, model: str, hardware: HardwareInfo, *, batch_size: int = DEFAULT_BATCH,
                 seq_len: int = DEFAULT_SEQ_LEN, precision: str = "fp32") -> ResourceEstimate:
        """What ``model`` needs on the detected device ``hardware``."""
        footprint = self.footprint(model, seq_len)
        ran = run_precision(hardware, precision)
        classification = self.classification(model)
        calibration = self.calibrator.calibrate(hardware, classification.pipeline or "")
        host = computes_on_host(hardware)
        own = has_own_memory(hardware)
        w32 = footprint.weight_bytes("fp32") / MIB
        w_run = run_weight_bytes(footprint, hardware, ran) / MIB
        per_sample = footprint.activation_bytes(1, ran) / MIB
        per_sample_cache = (footprint.kv_cache_bytes(1, ran) + footprint.state_bytes(1)) / MIB
        generative = footprint.kv is not None or footprint.recurrent_state_elements is not None
        basis = [f"parameters: {footprint.parameters:,} ({footprint.counted_by})",
                 f"weights at {ran}: {w_run:,.1f} MiB"
                 + (" (its converted graph stores the tied word embeddings twice)"
                    if hardware.converted_unties_weights and footprint.tied_float_elements
                    else "") + f"; fp32 copy on the CPU: {w32:,.1f} MiB",
                 "activations per sample: " + ("; ".join(footprint.activations.streams)
                                               or "inputs only")]
        basis += [f"{m.model} on {calibration.device}: peak {m.peak_mb:,.0f} MiB "
                  f"({m.source})" for m in calibration.measurements]
        basis += list(calibration.notes) + list(footprint.notes)
        phases = self._phases(calibration, w32, w_run, batch_size * per_sample if host else 0,
                              batch_size * per_sample_cache if host else 0, generative)
        device_peak = None
        if own and calibration.device_runtime_mb is not None:
            device_peak = calibration.device_runtime_mb + w_run + \
                batch_size * (per_sample + per_sample_cache)
        source = "estimate"
        row = self._measured_row(model, hardware, ran)
        if row is not None:
            phases, device_peak = self._refined(row, model, phases, device_peak, host, own,
                                                batch_size, seq_len, ran, basis)
            source = "history"
        available, _ = host_memory(self.report)
        device_available = (hardware.memory_available_bytes / MIB
                            if own and hardware.memory_available_bytes is not None else None)
        peak = max((p for p in phases.values() if p is not None), default=None)
        fits, reason = _fits(peak, device_peak, available, device_available,
                             w32 + calibration.extra_copies * w_run)
        max_batch = _max_batch(peak, device_peak, available, device_available,
                               (per_sample + per_sample_cache) if host else 0,
                               per_sample + per_sample_cache if own else 0, batch_size)
        disk, disk_basis = self._disk(model, footprint, hardware)
        basis.append(disk_basis)
        return ResourceEstimate(
            model=model, backend=hardware.backend, device=device_label(hardware),
            precision=ran, batch_size=batch_size, seq_len=seq_len,
            parameters=footprint.parameters, weights_mb=w_run, host_weights_mb=w32,
            extra_copies=calibration.extra_copies,
            activations_mb=batch_size * per_sample,
            kv_cache_mb=batch_size * footprint.kv_cache_bytes(1, ran) / MIB,
            state_mb=batch_size * footprint.state_bytes(1) / MIB,
            runtime_mb=calibration.runtime_mb, load_peak_mb=phases["load"],
            inference_peak_mb=phases["inference"], generation_peak_mb=phases["generation"],
            device_peak_mb=device_peak, disk_mb=disk,
            cpu_cores=host_cores(self.report) if host else 1, max_batch_size=max_batch,
            memory_available_mb=available, device_memory_available_mb=device_available,
            fits=fits, reason=reason, source=source, basis=tuple(dict.fromkeys(basis)))

    @staticmethod
    def _phases(calibration: Calibration, w32: float, w_run: float, activations: float,
                cache: float, generative: bool) -> dict[str, float | None]:
        inference = load = None
        if calibration.runtime_mb is not None:
            inference = calibration.runtime_mb + w32 + calibration.extra_copies * w_run \
                + activations
        if calibration.runtime_load_mb is not None:
            load = calibration.runtime_load_mb + w32 + calibration.extra_copies_load * w_run
        generation = inference + cache if generative and inference is not None else None
        return {"load": load, "inference": inference, "generation": generation}

    # ---- the history -----------------------------------------------------------------

    def _measured_row(self, model: str, hardware: HardwareInfo,
                      precision: str) -> dict[str, Any] | None:
        """The latest successful measurement of ``model`` on this very device (its hardware
        fingerprint) at ``precision``."""
        if self.db_path is None or not Path(self.db_path).is_file():
            return None
        if model not in self._history:
            import duckdb

            from hwaccel.errors import HwaccelError
            from hwaccel.history.store import Store

            try:
                with Store(self.db_path, read_only=True) as store:
                    self._history[model] = store.latest_results([model], measured=True,
                                                                by_fingerprint=True)
            except (HwaccelError, duckdb.Error):
                self._history[model] = []
        from hwaccel.history.provenance import fingerprint

        return next((r for r in reversed(self._history[model])
                     if (r["hardware"], r["device"]) == (hardware.backend, hardware.device)
                     and r.get("hardware_fingerprint") == fingerprint(hardware)
                     and r.get("precision") == precision), None)

    def _refined(self, row: dict[str, Any], model: str, phases: dict[str, float | None],
                 device_peak: float | None, host: bool, own: bool, batch_size: int,
                 seq_len: int, precision: str, basis: list[str]
                 ) -> tuple[dict[str, float | None], float | None]:
        """The phases with the history's measured peaks in place of the estimate."""
        then_batch, then_seq = int(row.get("batch_size") or 1), int(row.get("seq_len") or
                                                                    seq_len)
        then = self.footprint(model, then_seq)
        now = self.footprint(model, seq_len)
        shift = (now.activation_bytes(batch_size, precision)
                 - then.activation_bytes(then_batch, precision)) / MIB
        cache_now = (now.kv_cache_bytes(batch_size, precision) + now.state_bytes(batch_size))
        stamp = row["timestamp"].isoformat(sep=" ", timespec="minutes")
        where = f"run {str(row['run_id'])[:8]}, {stamp} UTC, batch {then_batch}, " \
                f"sequence {then_seq}"
        details = json.loads(row.get("details") or "{}")
        measured = with_helpers(float(row["memory_usage"]), details)
        inference = measured + (shift if host else 0.0)
        load = with_helpers(details.get("load_peak_rss_mb"), details) or phases["load"]
        generation = None
        if phases["generation"] is not None:
            generation = inference + (cache_now / MIB if host else 0.0)
        basis.append(f"measured peak {measured:,.0f} MiB in the history "
                     f"({where})" + (f", moved by {shift:+,.1f} MiB of computed activations"
                                     if host and shift else ""))
        if own and row.get("device_memory_usage") is not None:
            device_peak = float(row["device_memory_usage"]) + shift + cache_now / MIB
            basis.append(f"measured device peak {float(row['device_memory_usage']):,.0f} MiB "
                         f"({where})")
        return {"load": load, "inference": inference, "generation": generation}, device_peak

    # ---- disk ------------------------------------------------------------------------

    def _disk(self, model: str, footprint: Footprint,
              hardware: HardwareInfo) -> tuple[float | None, str]:
        """Disk: the checkpoint's files plus the converted model the backend caches."""
        converted = 0.0
        parts = []
        if footprint.checkpoint is not None:
            parts.append(f"checkpoint {footprint.checkpoint.bytes / MIB:,.1f} MiB in "
                         f"{footprint.checkpoint.files} file(s) "
                         f"({footprint.checkpoint.source})")
        elif self.ref(model).is_tiny:
            parts.append("no checkpoint: built from its config")
        else:
            parts.append(f"the checkpoint is not on this machine: "
                         f"{footprint.weight_bytes('fp32') / MIB:,.0f} MiB to download if "
                         f"stored in fp32, {footprint.weight_bytes('fp16') / MIB:,.0f} MiB "
                         "in fp16 or bf16")
        if hardware.converted_weights in DTYPE_BYTES:
            converted = footprint.weight_bytes(
                hardware.converted_weights, untied=hardware.converted_unties_weights) / MIB
            parts.append(f"{hardware.backend} keeps a converted copy in "
                         f"{hardware.converted_weights}: {converted:,.1f} MiB")
        checkpoint = footprint.checkpoint.bytes / MIB if footprint.checkpoint else 0.0
        return checkpoint + converted, "disk: " + "; ".join(parts)


def _fits(peak: float | None, device_peak: float | None, available: float | None,
          device_available: float | None, model_part: float) -> tuple[bool | None, str]:
    """Whether the estimate fits the free memory, and why (or why it cannot be told)."""
    if device_peak is not None and device_available is not None \
            and device_peak > device_available:
        return False, (f"needs {device_peak:,.0f} MiB of device memory, "
                       f"{device_available:,.0f} MiB free")
    if peak is None:
        if available is not None and model_part > available:
            return False, (f"the weights alone need {model_part:,.0f} MiB, "
                           f"{available:,.0f} MiB free")
        return None, "runtime baseline not measured on this device"
    if available is not None and peak > available:
        return False, f"needs {peak:,.0f} MiB, {available:,.0f} MiB free"
    free = f"{available:,.0f} MiB free" if available is not None else "free memory unknown"
    return True, f"needs {peak:,.0f} MiB, {free}"


def _max_batch(peak: float | None, device_peak: float | None, available: float | None,
               device_available: float | None, host_per_sample: float,
               device_per_sample: float, batch_size: int) -> int | None:
    """The largest batch whose peak fits the free memory (host and device)."""
    limits = []
    for total, free, per in ((peak, available, host_per_sample),
                             (device_peak, device_available, device_per_sample)):
        if total is None or free is None or per <= 0:
            continue
        fixed = total - batch_size * per
        limits.append(max(0, math.floor((free - fixed) / per)))
    return min(limits) if limits else None
