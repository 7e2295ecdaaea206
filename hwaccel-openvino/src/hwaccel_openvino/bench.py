"""The OpenVINO benchmark: the workload's model converted, compiled and measured.

Measured through :func:`hwaccel.kit.measure.benchmark_workload` like every backend, with the CPU
PyTorch fp32 reference compared (``max_abs_diff``). Conversion (or reading the cached IR)
and compilation happen in ``place_model``, so they count as load time. A model OpenVINO
cannot convert fails as the backend's (:class:`~hwaccel_openvino.convert.ConversionError`)
with the converter's message; errors at inference time carry the runtime's message.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hwaccel import BenchmarkRequest, BenchmarkResult


def default_threads() -> int:
    """The physical core count (oversubscribed threads slow both runtimes down)."""
    import psutil

    return psutil.cpu_count(logical=False) or 1


def run(request: BenchmarkRequest) -> BenchmarkResult:
    """Measure the request's workload on its OpenVINO device."""
    import torch

    from hwaccel.kit.measure import benchmark_workload
    from hwaccel.kit.workloads import load_workload
    from hwaccel_openvino.convert import place_for_workload

    settings = request.settings
    threads = settings.threads or default_threads()
    torch.set_num_threads(threads)  # the PyTorch reference and the conversion trace
    workload = load_workload(request.model, request.classification)
    workload.prepare()
    placed: list[Any] = []

    def place_model(model: Any) -> Any:
        inputs = workload.make_inputs(settings.batch_size, settings.seq_len)
        ov_model = place_for_workload(model, workload, inputs, model_ref=request.model,
                                      device=request.hardware.device, threads=threads,
                                      precision=settings.precision)
        placed.append(ov_model)
        return ov_model

    result = benchmark_workload(request, place_model=place_model,
                                place_inputs=lambda inputs: inputs, threads=threads,
                                precision=settings.precision, compare_reference=True)
    import openvino

    ran = placed[0].execution_precision if placed else None
    return dataclasses.replace(result, precision=ran or settings.precision,
                               versions={**result.versions, "openvino": openvino.__version__})
