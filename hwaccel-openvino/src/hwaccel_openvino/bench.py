"""The OpenVINO benchmark: the workload's model converted, compiled and measured.

Measured through :func:`hwaccel.kit.measure.benchmark_workload` like every backend, with the CPU
PyTorch fp32 reference compared (``max_abs_diff``). Conversion (or reading the cached IR)
and compilation happen in ``place_model``, so they count as load time; the PyTorch model is
loaded there only when the call's IR is not cached (``load_lazily``). A model OpenVINO
cannot convert fails as the backend's (:class:`~hwaccel_openvino.convert.ConversionError`)
with the converter's message; errors at inference time carry the runtime's message.

The row's precision is what the compiled graph computed in (``bf16`` for ``native`` on a
CPU with bf16 instructions), except for ``int8``/``int4``, whose rows keep that name; its
details say, beside what was asked for (``requested_precision``, as for every backend), how
the weights were stored and the activations computed (``weights``, ``activations``), and
whether the IR came from the cache (``ir_cached``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult


def default_threads() -> int:
    """The physical core count (oversubscribed threads slow both runtimes down)."""
    import psutil

    return psutil.cpu_count(logical=False) or 1


NO_CACHE_CHOICE = ("OpenVINO keeps the KV cache of a generation in its stateful graph (or "
                   "none, in its fallback loop): transformers' {} cache does not apply")


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on its OpenVINO device (a generation that asks for
    one of transformers' caches is ``unsupported``: :data:`NO_CACHE_CHOICE`)."""
    if request.settings.new_tokens > 0 and request.settings.cache_implementation:
        from hwaccel.kit.failures import failure

        return failure(request, "unsupported",
                       NO_CACHE_CHOICE.format(request.settings.cache_implementation))
    import torch

    from hwaccel.kit.measure import benchmark_workload
    from hwaccel.kit.workloads import load_workload
    from hwaccel_openvino.convert import place_for_workload
    from hwaccel_openvino.weights import describe, is_compressed

    settings = request.settings
    threads = settings.threads or default_threads()
    torch.set_num_threads(threads)  # the PyTorch reference and the conversion trace
    workload = load_workload(request.model, request.classification)
    workload.prepare()
    placed: list[Any] = []

    def place_model(load_model: Any) -> Any:
        inputs = workload.make_inputs(settings.batch_size, settings.seq_len)
        ov_model = place_for_workload(load_model, workload, inputs, model_ref=request.model,
                                      device=request.hardware.device, threads=threads,
                                      precision=settings.precision, load_lazily=True)
        placed.append(ov_model)
        return ov_model

    result = benchmark_workload(request, place_model=place_model,
                                place_inputs=lambda inputs: inputs, threads=threads,
                                precision=settings.precision, compare_reference=True,
                                load_lazily=True)
    import openvino

    ran = placed[0].execution_precision if placed else None
    details = {**result.details, **describe(settings.precision, ran)}
    if placed:
        details["ir_cached"] = all(c.cached for c in placed[0].conversions)
    precision = settings.precision if is_compressed(settings.precision) else ran
    return dataclasses.replace(result, precision=precision or settings.precision,
                               details=details,
                               versions={**result.versions, "openvino": openvino.__version__})
