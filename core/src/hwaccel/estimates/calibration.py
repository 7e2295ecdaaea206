"""The runtime's own memory on each device, measured: baselines and the weights it keeps.

A model's footprint (:mod:`hwaccel.estimates.footprint`) says what the model itself needs; what the
runtime around it costs is measured, never typed in. The estimate of a job's peak resident
memory on a device ``d`` for a model of pipeline ``p`` is::

    peak = R[d, p] + W_fp32 + e[d] * W_run + A

A job's peak counts the processes its backend starts beside it (the web backend's browser,
``details["helper_peak_rss_mb"]``). ``W_fp32`` is the model in fp32 on the CPU (every
workload loads it there first), ``W_run`` the weights at the precision the device runs
(as its converted graph holds them: tied word embeddings twice in an ONNX export),
``A`` the call's activations when the device computes on the host, ``R[d, p]`` the
**runtime baseline** (libraries, the runtime's start, the first call's workspaces) and
``e[d]`` the **extra copies of the weights** the backend keeps (OpenVINO's compiled graph; 0
for PyTorch on the CPU). Two measurements give both: the memory figure of a benchmark of a
small example model and of the largest example model, each on that device; ``e`` is the
slope between them (never below 0), ``R`` what remains of the small example's peak once its
computed part is taken away. The load phase is calibrated the same way from the high-water
mark once the model is loaded. Accelerators with their own memory get ``D[d, p]``, the
device's baseline, from the example's device peak likewise.
The example models are the pipelines' own (:attr:`PipelineInfo.example_models`): the
smallest of the model's pipeline (a tiny one, or a composition of the pipeline's own), and
the single example of all whose weight files are largest (the shipped MiniLM).

A measurement is taken from the DuckDB history when it holds a successful benchmark of that
example on the same device (same hardware fingerprint, same library versions); otherwise it
is measured now with the benchmark's own job (one timed call, the kernel's high-water mark
taken before any reference copy loads) and kept in ``calibration.json`` in the hwaccel cache
folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwaccel.estimates.footprint import Footprint
from hwaccel.hardware.detection import DetectionReport
from hwaccel.history.provenance import fingerprint, library_versions
from hwaccel.kit import jsoncache, paths
from hwaccel.plugins import Plugins
from hwaccel.types import BenchmarkSettings, HardwareInfo

#: how calibration jobs measure: one timed call (which fills conversion caches as a
#: benchmark's does), with the memory figure of the same job
SETTINGS = BenchmarkSettings(warmup=0, min_iterations=1, min_seconds=0.0, max_seconds=60.0)
_FORMAT = 1
MIB = 2**20


def cache_file() -> Path:
    """The file that keeps calibration measurements."""
    return paths.cache_dir() / "calibration.json"


def run_precision(hardware: HardwareInfo, requested: str) -> str:
    """The precision a device runs when ``requested`` is asked for: the request when the
    device declares it among its capabilities, else fp32 (what backends fall back to)."""
    return requested if requested in hardware.capabilities else "fp32"


def run_weight_bytes(footprint: Footprint, hardware: HardwareInfo, precision: str) -> int:
    """Bytes of the weights ``hardware`` holds at ``precision``: its converted graph's, where
    that graph stores tied word embeddings twice (``converted_unties_weights``)."""
    return footprint.weight_bytes(precision, untied=hardware.converted_unties_weights)


def with_helpers(peak_mb: float | None, details: dict[str, Any]) -> float | None:
    """A job's peak resident memory plus that of the processes its backend started beside
    it (``details["helper_peak_rss_mb"]``: the web backend's browser), in MiB."""
    if peak_mb is None:
        return None
    return peak_mb + float(details.get("helper_peak_rss_mb") or 0.0)


def computes_on_host(hardware: HardwareInfo) -> bool:
    """Whether the device computes on the host's cores and memory."""
    return hardware.compute_resource == "host-cpu"


def has_own_memory(hardware: HardwareInfo) -> bool:
    """Whether the device has memory of its own, apart from the host's (a GPU)."""
    return not computes_on_host(hardware) and hardware.memory_total_bytes is not None


@dataclass(frozen=True)
class Measured:
    """The memory figures of one benchmark of an example model on a device (MiB)."""

    model: str
    peak_mb: float
    load_peak_mb: float | None
    device_peak_mb: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Calibration:
    """What the runtime of one device costs beside the model, for one pipeline (MiB).

    ``runtime_mb`` is ``R`` at the peak, ``runtime_load_mb`` at the end of loading,
    ``device_runtime_mb`` the device's own baseline; ``None`` where nothing was measured
    (``notes`` say why). ``extra_copies`` is ``e``.
    """

    device: str
    pipeline: str
    runtime_mb: float | None
    runtime_load_mb: float | None
    device_runtime_mb: float | None
    extra_copies: float
    extra_copies_load: float
    measurements: tuple[Measured, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        data = dataclasses.asdict(self)
        data["measurements"] = [m.to_dict() for m in self.measurements]
        data["notes"] = list(self.notes)
        return data


def device_label(hardware: HardwareInfo) -> str:
    """``cpu``, ``openvino:CPU``, ``cuda:0``: a device's backend and device, once each."""
    from hwaccel.running.matrix import device_label as label

    return label(hardware.backend, hardware.device)


class Calibrator:
    """Finds or measures the calibration of devices for pipelines (see the module docstring).

    :param footprint_of: computes the footprint of a model reference at the calibration's
        settings (batch 1, sequence 32); the estimator passes its own, cached.
    :param db_path: the DuckDB history to look in first (``None``: none).
    :param measure: run jobs for what neither the history nor the cache holds; without it,
        such devices have no baseline and the estimate says so.
    :param on_measure: called with (model, device label) before each measurement, for
        progress output.
    """

    def __init__(self, plugins: Plugins, report: DetectionReport,
                 footprint_of: Callable[[str], Footprint], *, db_path: Path | None = None,
                 measure: bool = True, timeout_s: float = 300.0,
                 on_measure: Callable[[str, str], None] | None = None):
        self.plugins = plugins
        self.report = report
        self.footprint_of = footprint_of
        self.db_path = db_path
        self.measure = measure
        self.timeout_s = timeout_s
        self.on_measure = on_measure
        self._measured: dict[tuple[str, str], Measured | str] = {}
        self._examples: dict[str, tuple[str, ...]] | None = None
        self._jobs: dict[tuple[str, str], Any] = {}

    # ---- which examples ---------------------------------------------------------------

    def examples(self) -> dict[str, tuple[str, ...]]:
        """Each loaded pipeline's example models."""
        if self._examples is None:
            from hwaccel.running.matrix import example_models

            self._examples = {}
            for record in self.plugins.loaded():
                if record.kind != "pipeline":
                    continue
                found = example_models(self.plugins, [record.name])
                if found:
                    self._examples[record.name] = tuple(found)
        return self._examples

    @staticmethod
    def _size(model: str) -> int:
        """Bytes of an example's weight files (both parts of a composition): 0 for models
        built from a config (tiny ones), -1 for one that cannot be resolved or whose
        checkpoint is broken (never chosen). Only file headers are read."""
        from hwaccel.errors import HwaccelError
        from hwaccel.estimates.footprint import checkpoint_of
        from hwaccel.models.resolve import resolve_model

        try:
            ref = resolve_model(model)
        except HwaccelError:
            return -1
        total = 0
        for part in ref.components or (ref,):
            if part.path is None:
                if not part.is_tiny:
                    return -1
                continue
            try:
                checkpoint = checkpoint_of(part.path)
            except HwaccelError:
                return -1
            total += checkpoint.bytes if checkpoint else 0
        return total

    def base_example(self, pipeline: str) -> str | None:
        """The smallest example of ``pipeline`` (of any pipeline when it names none): a tiny
        one when it has one, else the one with the smallest weight files."""
        examples = self.examples()
        pool = examples.get(pipeline) or tuple(m for ms in examples.values() for m in ms)
        sized = [(self._size(m), m) for m in pool]
        sized = [(s, m) for s, m in sized if s >= 0]
        return min(sized)[1] if sized else None

    def copies_example(self) -> str | None:
        """The single (not composed) example of all pipelines with the largest weight files
        (a real checkpoint); ``None`` when every example is built from a config."""
        from hwaccel.models.resolve import composition_roles

        sized = [(self._size(m), m) for ms in self.examples().values() for m in ms
                 if composition_roles(m) is None]
        sized = [(s, m) for s, m in sized if s > 0]
        return max(sized)[1] if sized else None

    def _pipeline_of(self, model: str) -> str | None:
        return next((p for p, ms in self.examples().items() if model in ms), None)

    def needed(self, hardware: HardwareInfo, pipeline: str) -> list[str]:
        """The example models a calibration of ``hardware`` for ``pipeline`` measures."""
        copies = self.copies_example()
        wanted = [self.base_example(pipeline), copies]
        if copies is not None:
            wanted.append(self.base_example(self._pipeline_of(copies) or pipeline))
        return list(dict.fromkeys(m for m in wanted if m))

    # ---- measurements -----------------------------------------------------------------

    def prepare(self, targets: Iterable[tuple[HardwareInfo, str]]) -> None:
        """Find or measure, in one pool of jobs, everything these calibrations need."""
        pending = []
        for hardware, pipeline in targets:
            for model in self.needed(hardware, pipeline):
                key = (device_label(hardware), model)
                if key not in self._measured and (hardware, model) not in pending:
                    found = self._recorded(hardware, model)
                    if found is not None:
                        self._measured[key] = found
                    elif not self.measure:
                        self._measured[key] = "not measured yet (measuring was not allowed)"
                    else:
                        pending.append((hardware, model))
        if pending:
            self._run(pending)

    def _request(self, hardware: HardwareInfo, model: str) -> Any:
        """The planned benchmark job of ``model`` on ``hardware`` (planned once)."""
        from hwaccel.running import benchmark
        key = (device_label(hardware), model)
        if key not in self._jobs:
            jobs, _ = benchmark.plan([model], [hardware.backend], self.plugins, self.report,
                                     SETTINGS, every_device=True)
            self._jobs[key] = next(j for j in jobs
                                   if j.request.hardware.device == hardware.device)
        return self._jobs[key]

    def _recorded(self, hardware: HardwareInfo, model: str) -> Measured | None:
        """A measurement of ``model`` on ``hardware`` from the history, else the cache."""
        return self._from_history(hardware, model) or self._from_cache(hardware, model)

    def _from_history(self, hardware: HardwareInfo, model: str) -> Measured | None:
        if self.db_path is None or not Path(self.db_path).is_file():
            return None
        import duckdb

        from hwaccel.errors import HwaccelError
        from hwaccel.history.store import Store

        try:
            with Store(self.db_path, read_only=True) as store:
                rows = store.query(
                    "SELECT * FROM hardware_results WHERE model_id = ? AND hardware = ? "
                    "AND device = ? AND hardware_fingerprint = ? AND batch_size = 1 "
                    "AND success AND memory_usage IS NOT NULL "
                    "ORDER BY timestamp DESC, id DESC",
                    [model, hardware.backend, hardware.device, fingerprint(hardware)])
        except (HwaccelError, duckdb.Error):
            return None
        current = library_versions()
        for row in rows:
            versions = json.loads(row.get("versions") or "{}")
            if any(versions.get(k) != v for k, v in current.items()):
                continue
            details = json.loads(row.get("details") or "{}")
            stamp = row["timestamp"].isoformat(sep=" ", timespec="minutes")
            return Measured(model=model,
                            peak_mb=with_helpers(float(row["memory_usage"]), details),
                            load_peak_mb=with_helpers(details.get("load_peak_rss_mb"),
                                                      details),
                            device_peak_mb=row.get("device_memory_usage"),
                            source=f"history run {str(row['run_id'])[:8]}, {stamp} UTC")
        return None

    def _key(self, hardware: HardwareInfo, model: str) -> str:
        from hwaccel.running.matrix import config_key

        return config_key(self._request(hardware, model).request, library_versions())

    def _from_cache(self, hardware: HardwareInfo, model: str) -> Measured | None:
        data = jsoncache.read(cache_file())
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        entry = data.get("entries", {}).get(self._key(hardware, model))
        if not isinstance(entry, dict):
            return None
        try:
            return Measured(**entry)
        except TypeError:
            return None

    def _run(self, pending: list[tuple[HardwareInfo, str]]) -> None:
        from hwaccel.running.jobs import JobPool, default_memory_limit
        from hwaccel.running.runner import run_job

        data = jsoncache.read(cache_file())
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            data = {"format": _FORMAT, "entries": {}}
        with JobPool(memory_limit_mb=default_memory_limit(), kinds=("benchmark",)) as pool:
            for hardware, model in pending:
                label = device_label(hardware)
                if self.on_measure:
                    self.on_measure(model, label)
                job = self._request(hardware, model)
                if job.skip is not None:
                    self._measured[(label, model)] = f"{job.skip.error_category}: " \
                                                     f"{job.skip.error}"
                    continue
                result = run_job(job.request, self.timeout_s, pool)
                if not result.success or result.peak_rss_mb is None:
                    self._measured[(label, model)] = (
                        f"{result.error_category}: {result.error}" if not result.success
                        else "the benchmark recorded no memory figure")
                    continue
                stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
                found = Measured(model=model,
                                 peak_mb=with_helpers(result.peak_rss_mb, result.details),
                                 load_peak_mb=with_helpers(
                                     result.details.get("load_peak_rss_mb"), result.details),
                                 device_peak_mb=result.device_peak_mb,
                                 source=f"measured {stamp} UTC")
                self._measured[(label, model)] = found
                data["entries"][self._key(hardware, model)] = found.to_dict()
        jsoncache.write(cache_file(), data)

    # ---- the calibration ---------------------------------------------------------------

    def calibrate(self, hardware: HardwareInfo, pipeline: str) -> Calibration:
        """The calibration of ``hardware`` for models of ``pipeline``."""
        self.prepare([(hardware, pipeline)])
        label = device_label(hardware)
        notes: list[str] = []
        precision = run_precision(hardware, "fp32")
        host = computes_on_host(hardware)

        def part(model: str, weights: str) -> float:
            footprint = self.footprint_of(model)
            activations = footprint.activation_bytes(1, precision) if host else 0
            return (footprint.weight_bytes(weights) + activations) / MIB

        def got(model: str | None) -> Measured | None:
            if model is None:
                notes.append("no example model to measure with")
                return None
            found = self._measured.get((label, model))
            if isinstance(found, Measured):
                return found
            notes.append(f"{model} on {label}: {found}")
            return None

        copies_model = self.copies_example()
        copies_base = self.base_example(self._pipeline_of(copies_model or "") or pipeline)
        big, small = got(copies_model), got(copies_base)
        extra = extra_load = 0.0
        if big is not None and small is not None and big.model != small.model:
            span = (run_weight_bytes(self.footprint_of(big.model), hardware, precision)
                    - run_weight_bytes(self.footprint_of(small.model), hardware,
                                       precision)) / MIB

            def slope(high: float | None, low: float | None) -> float:
                if high is None or low is None or span <= 0:
                    return 0.0
                rise = (high - part(big.model, "fp32")) - (low - part(small.model, "fp32"))
                return max(0.0, rise / span)

            extra = slope(big.peak_mb, small.peak_mb)
            extra_load = slope(big.load_peak_mb, small.load_peak_mb)
        else:
            notes.append("extra copies of the weights not calibrated: assumed 0")
        base = got(self.base_example(pipeline))
        runtime = runtime_load = device_runtime = None
        if base is not None:
            footprint = self.footprint_of(base.model)
            weights_run = run_weight_bytes(footprint, hardware, precision) / MIB
            runtime = base.peak_mb - part(base.model, "fp32") - extra * weights_run
            if base.load_peak_mb is not None:
                runtime_load = base.load_peak_mb - footprint.weight_bytes("fp32") / MIB \
                    - extra_load * weights_run
            if has_own_memory(hardware) and base.device_peak_mb is not None:
                device_runtime = base.device_peak_mb - weights_run - \
                    footprint.activation_bytes(1, precision) / MIB
        used = tuple(m for m in (base, small, big) if m is not None)
        return Calibration(device=label, pipeline=pipeline, runtime_mb=runtime,
                           runtime_load_mb=runtime_load, device_runtime_mb=device_runtime,
                           extra_copies=extra, extra_copies_load=extra_load,
                           measurements=tuple(dict.fromkeys(used)),
                           notes=tuple(dict.fromkeys(notes)))
