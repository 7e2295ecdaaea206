"""The one measurement method every backend uses.

A benchmark reports the first (cold) call on its own, then runs ``warmup`` untimed calls,
then times calls with ``time.perf_counter`` (or the device's own events, where the backend
has them) until both ``min_iterations`` calls and
``min_seconds`` have passed (or ``max_seconds``, whichever ends first once the minimum count
is reached). Percentiles use linear interpolation between closest ranks, so
``p50 <= p90 <= p99`` always holds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from hwaccel.types import BenchmarkRequest, BenchmarkResult


@dataclass(frozen=True)
class Timing:
    """The raw outcome of :func:`time_calls`."""

    cold_ms: float
    times_ms: tuple[float, ...]
    last_output: Any


def percentile(sorted_values: list[float] | tuple[float, ...], q: float) -> float:
    """Return the ``q``-th percentile (0..100) of ascending values, linearly interpolated."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize(times_ms: tuple[float, ...] | list[float], batch_size: int) -> dict[str, float]:
    """Return p50/p90/p99, mean, stdev, min, max, cv and throughput (samples/s) of latencies."""
    ordered = sorted(times_ms)
    mean = statistics.fmean(ordered)
    stdev = statistics.stdev(ordered) if len(ordered) > 1 else 0.0
    return {
        "p50_ms": percentile(ordered, 50), "p90_ms": percentile(ordered, 90),
        "p99_ms": percentile(ordered, 99), "mean_ms": mean, "stdev_ms": stdev,
        "min_ms": ordered[0], "max_ms": ordered[-1], "cv": stdev / mean if mean else 0.0,
        "throughput": batch_size / (mean / 1000.0) if mean else 0.0,
    }


class DeviceTimer(Protocol):
    """Times one call with the device's own clock (e.g. a pair of CUDA events)."""

    name: str

    def start(self) -> None:
        """Mark the start of a call on the device."""

    def stop(self) -> float:
        """Mark its end, wait for the device, and return the milliseconds between."""


def time_calls(call: Callable[[], Any], *, warmup: int, min_iterations: int,
               min_seconds: float, max_seconds: float,
               timer: DeviceTimer | None = None) -> Timing:
    """Time ``call`` by the method above; ``call`` must include any device synchronisation.

    Each call is timed by ``timer`` when the backend has one, else by ``time.perf_counter``;
    the minimum and maximum durations are always counted on ``perf_counter``.
    """

    def timed() -> tuple[Any, float]:
        if timer is not None:
            timer.start()
            output = call()
            return output, timer.stop()
        start = time.perf_counter()
        output = call()
        return output, (time.perf_counter() - start) * 1000.0

    output, cold_ms = timed()
    for _ in range(warmup):
        output = call()
    times: list[float] = []
    began = time.perf_counter()
    while True:
        output, ms = timed()
        times.append(ms)
        elapsed = time.perf_counter() - began
        if len(times) >= min_iterations and (elapsed >= min_seconds or elapsed >= max_seconds):
            break
    return Timing(cold_ms=cold_ms, times_ms=tuple(times), last_output=output)


def process_memory_mb(field: str) -> float | None:
    """Return a memory field of this process's ``/proc/self/status`` in MiB.

    ``VmRSS`` is the resident memory now, ``VmHWM`` the kernel's high-water mark. Where
    ``/proc`` is missing, ``VmRSS`` falls back to psutil and ``VmHWM`` to ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if field == "VmHWM":
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def max_abs_diff(reference: dict[str, Any], outputs: dict[str, Any]) -> float:
    """The largest absolute difference between same-named outputs, compared in fp32 on the CPU.

    Outputs may be torch tensors or NumPy arrays; an output missing on either side is an
    error, since the comparison would otherwise pass by leaving it out.
    """
    import torch

    if set(reference) != set(outputs):
        raise ValueError(f"outputs differ in names: reference {sorted(reference)}, "
                         f"device {sorted(outputs)}")
    worst = 0.0
    for name, expected in reference.items():
        got = torch.as_tensor(outputs[name]).detach().float().cpu()
        worst = max(worst, (got - torch.as_tensor(expected).float()).abs().max().item())
    return worst


def embedding_similarity(workload: Any, reference: dict[str, Any] | None,
                         outputs: dict[str, Any], inputs: dict[str, Any]) -> float | None:
    """The lowest cosine similarity, over the batch, between the embeddings of the device's
    outputs and of the CPU reference's, for a workload that makes embeddings (an optional
    ``embeddings(outputs, inputs)`` method returning one vector per row, or ``None``)."""
    import torch

    embed = getattr(workload, "embeddings", None)
    if reference is None or embed is None:
        return None
    expected, got = embed(reference, inputs), embed(outputs, inputs)
    if expected is None or got is None:
        return None
    similarity = torch.nn.functional.cosine_similarity(
        torch.as_tensor(got).float().flatten(1), torch.as_tensor(expected).float().flatten(1))
    return float(similarity.min())


def benchmark_workload(request: BenchmarkRequest, *,
                       place_model: Callable[[Any], Any],
                       place_inputs: Callable[[Any], Any],
                       synchronize: Callable[[], None] | None = None,
                       precision: str = "fp32", threads: int | None = None,
                       compare_reference: bool = False,
                       timer: DeviceTimer | None = None,
                       call_context: Callable[[], AbstractContextManager[Any]] | None = None,
                       load_lazily: bool = False,
                       ) -> BenchmarkResult:
    """Measure the pipeline's workload for ``request`` on a device, the same way everywhere.

    One process measures everything, in this order: the model is loaded and placed (load
    time; ``details["load_peak_rss_mb"]`` is the kernel high-water mark then), the calls are
    timed, ``peak_rss_mb`` is the high-water mark after them (this model on this device
    alone: nothing else has been loaded yet), and only then is the CPU reference copy loaded
    and run, when there is one to compare with.

    With ``request.settings.new_tokens > 0`` each timed call is a whole greedy generation
    (:mod:`hwaccel.kit.generation`: time to first token, per-token latency, tokens/s, and
    the share of tokens identical to the CPU reference's, which generation always computes);
    otherwise it is one forward call.

    :param place_model: moves (or converts) the CPU model onto the device; its time counts
        as load time.
    :param place_inputs: moves the inputs onto the device (not timed).
    :param synchronize: waits for the device to finish; called inside every timed call.
    :param compare_reference: also run a separately loaded CPU PyTorch fp32 copy of the
        model on the same inputs (after the timings and the memory figure) and report the
        largest absolute difference of the outputs as ``max_abs_diff``.
    :param timer: the device's own per-call timer (CUDA events), recorded in ``details``
        as ``timer``; without one, calls are timed with ``time.perf_counter``.
    :param call_context: makes a fresh context manager that is entered around every call of
        the device model (the cold call, the warm-up and each timed call, inside the timing,
        around ``synchronize``), e.g. ``lambda: torch.autocast("cpu", dtype=torch.bfloat16)``
        or a profiler; the CPU reference never runs in it. This is how a backend changes how
        the model is called without patching ``forward``.
    :param load_lazily: hand ``place_model`` a function that loads the CPU model (the
        workload's ``load_model``, memoised while ``place_model`` runs, then forgotten: the
        placed model keeps it only if it needs it) instead of the loaded model, for a backend
        that may not need it (a converted model read from its cache); both still count as
        load time.

    Compared with the reference, a workload that makes embeddings also records
    ``details["cosine_similarity"]`` (:func:`embedding_similarity`).
    """
    from hwaccel.kit.failures import (
        BACKEND,
        HARNESS,
        AttributedError,
        attribute,
        blame_by_frame,
        blame_reference,
        stage,
    )
    from hwaccel.kit.workloads import load_workload

    settings = request.settings
    generating = settings.new_tokens > 0
    with stage("prepare", HARNESS):
        workload = load_workload(request.model, request.classification)
        workload.prepare()
    if generating:
        from hwaccel.kit.generation import check_generates

        check_generates(workload, request.model)

    def on_the_model(exc: BaseException) -> str:
        return blame_reference(exc, workload)

    def on_the_device(exc: BaseException) -> str:
        return blame_by_frame(exc, BACKEND)

    def run_reference() -> Any:
        """The CPU PyTorch fp32 outputs (or greedy tokens) of a separately loaded copy."""
        with stage("inputs", HARNESS):
            cpu_inputs = workload.make_inputs(settings.batch_size, settings.seq_len)
        with stage("reference", on_the_model):
            reference_model = workload.load_model()
            if generating:
                return workload.generate(reference_model, cpu_inputs, settings.new_tokens)
            return workload.forward(reference_model, cpu_inputs)

    baseline = process_memory_mb("VmRSS")
    start = time.perf_counter()
    if load_lazily:
        loaded: list[Any] = []

        def load_cpu_model() -> Any:
            if not loaded:
                with stage("load", on_the_model):
                    loaded.append(workload.load_model())
            return loaded[0]

        with stage("placement", on_the_device):
            model = place_model(load_cpu_model)
        loaded.clear()  # the placed model keeps the CPU model only if it needs it
    else:
        with stage("load", on_the_model):
            cpu_model = workload.load_model()
        with stage("placement", on_the_device):
            model = place_model(cpu_model)
        del cpu_model
    load_time = time.perf_counter() - start
    details: dict[str, Any] = {"timer": timer.name if timer is not None else "perf_counter",
                               "load_peak_rss_mb": process_memory_mb("VmHWM"),
                               "requested_precision": settings.precision}
    with stage("inputs", HARNESS):
        cpu_inputs = workload.make_inputs(settings.batch_size, settings.seq_len)
    with stage("placement", on_the_device):
        inputs = place_inputs(cpu_inputs)

    def in_context(run: Callable[[], Any]) -> Any:
        with call_context() if call_context is not None else nullcontext():
            output = run()
            if synchronize is not None:
                synchronize()
        return output

    try:
        if generating:
            from hwaccel.kit.generation import time_generation

            timing = time_generation(workload, model, inputs, settings, in_context)
        else:
            timing = time_calls(lambda: in_context(lambda: workload.forward(model, inputs)),
                                warmup=settings.warmup, min_iterations=settings.min_iterations,
                                min_seconds=settings.min_seconds,
                                max_seconds=settings.max_seconds, timer=timer)
    except Exception as exc:  # noqa: BLE001 - attributed, then raised again
        run_reference()  # whose failure: the model's when the CPU reference fails too
        found, message = attribute(exc, on_the_device(exc))
        raise AttributedError(found, f"device: {message}", stage="device") from exc
    peak = process_memory_mb("VmHWM")
    reference = run_reference() if compare_reference or generating else None
    fields: dict[str, Any] = {}
    with stage("outputs", HARNESS):
        if generating:
            from hwaccel.kit.generation import generation_fields

            fields = generation_fields(timing, reference)
            shapes = {"sequences": list(timing.last_output.shape)}
        else:
            shapes = workload.output_shapes(timing.last_output)
            fields["max_abs_diff"] = (max_abs_diff(reference, timing.last_output)
                                      if reference else None)
            similarity = embedding_similarity(workload, reference, timing.last_output,
                                              cpu_inputs)
            if similarity is not None:
                details["cosine_similarity"] = similarity
    details.update(fields.pop("details", {}))
    return BenchmarkResult(
        model=request.model, backend=request.hardware.backend, device=request.hardware.device,
        success=True, load_time_s=load_time, cold_ms=timing.cold_ms,
        iterations=len(timing.times_ms), batch_size=settings.batch_size,
        seq_len=settings.seq_len, threads=threads, precision=precision,
        output_shapes=shapes, baseline_rss_mb=baseline, peak_rss_mb=peak, details=details,
        **fields, **summarize(timing.times_ms, settings.batch_size))
