"""The hooks every hwaccel plugin may implement.

Backends implement ``hwaccel_backend_info``, ``hwaccel_detect``, ``hwaccel_template`` and
``hwaccel_benchmark`` for their own backend; pipelines implement ``hwaccel_pipeline_info``,
``hwaccel_classify`` and ``hwaccel_template`` for their own pipeline. A backend never names a
pipeline and a pipeline never names a backend: every
(model, backend) combination comes from composing their answers in the core.

Rules for implementations (checked by the loader and the tests):

* Hooks are called with keyword arguments only; an implementation may accept fewer
  arguments than the spec (opt-in), never more, and must not give its arguments defaults.
* A plugin module must import without its vendor SDK: import heavy libraries inside the hook.
* The core calls hooks through pluggy's plugin manager (so ``HWACCEL_TRACE_PLUGINS=1`` traces
  every call and ``firstresult`` holds); each implementation runs inside a guard, so one that
  raises is reported against its plugin and the other plugins' answers still count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from hwaccel.types import (
        BackendInfo,
        BenchmarkRequest,
        BenchmarkResult,
        Classification,
        HardwareInfo,
        ModelRef,
        PipelineInfo,
        TemplatePart,
    )

PROJECT = "hwaccel"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- Backend hooks ---------------------------------------------------------------------------


@hookspec
def hwaccel_backend_info() -> BackendInfo | None:
    """Declare this plugin's backend: its name and the facts the core must not hard-code.

    Called when hwaccel orders devices (``recommend``, ``select_device``), explains an absent
    backend, records library versions and lists plugins. Answer from constants: never probe
    hardware or import the vendor SDK here.

    :returns: a ``BackendInfo`` (priority in the default device order, whether it is the last
        resort, whether it runs PyTorch modules, advice for a machine without it, the
        distributions whose versions its results record, other names of its devices).

    How results combine: one record per backend plugin, collected from all.
    """


@hookspec
def hwaccel_detect() -> list[HardwareInfo]:
    """Report the devices of this plugin's backend, present or absent.

    Called by ``hwaccel detect`` (the answer is cached on disk until ``--refresh``) and before
    a benchmark picks its device. Query the vendor's real API; never invent a device.

    :returns: one ``HardwareInfo`` per device. When the backend is absent, return one
        record with ``available=False`` and the ``reason`` (SDK not installed, no device,
        driver error), so that absence is explained.

    How results combine: all plugins' lists are concatenated. An implementation that raises
    is recorded as a detection error of its plugin; the others still answer.
    """


@hookspec(firstresult=True)
def hwaccel_benchmark(request: BenchmarkRequest) -> BenchmarkResult | None:
    """Load and run a model on this plugin's device and measure it.

    Called inside a separate job process with a time limit, one job per (model, device).
    Only the plugin that owns ``request.hardware.backend`` answers; every other plugin
    returns ``None``. Use :func:`hwaccel.kit.measure.benchmark_workload` so that every backend
    measures the same way (cold call, warm-up, timed iterations, percentiles; whole greedy
    generations when ``request.settings.new_tokens > 0``). A backend that cannot generate
    returns ``failure(request, "unsupported", why)`` for such a request.

    :param request: the model reference, the detected device, the model's classification
        (its ``workload`` names the pipeline code that builds the model and its inputs) and
        the measurement settings.
    :returns: a ``BenchmarkResult``, or ``None`` when the device is not this plugin's.

    How results combine: the first non-``None`` result wins. Memory high-water marks, library
    versions and the hardware fingerprint are added by the core.
    """


# -- Pipeline hooks --------------------------------------------------------------------------


@hookspec
def hwaccel_pipeline_info() -> PipelineInfo | None:
    """Declare this plugin's pipeline: the labels it takes, its precedence, its example models.

    Called before classification (the core decides which pipeline a model's labels belong to
    from every pipeline's ``takes`` and ``precedence``, so a new pipeline needs no core
    change), by ``hwaccel matrix`` (the example models represent the pipeline) and by the
    predecessor's classifier API. Answer from constants: import neither torch nor
    transformers here.

    :returns: a ``PipelineInfo``.

    How results combine: one record per pipeline plugin, collected from all.
    """


@hookspec
def hwaccel_classify(model: ModelRef) -> Classification | None:
    """Claim a model for this plugin's pipeline, with family, subfamily and confidence.

    Called by ``hwaccel classify`` and before every benchmark and generated test. The core
    has already resolved the reference (config, local folder, cache, class name, tasks or
    name) into ``model``; ``model.evidence`` says which signal it came from.

    :param model: the resolved model reference.
    :returns: a ``Classification`` when this pipeline handles the model, else ``None``.

    How results combine: all claims are collected and the highest ``confidence`` wins (ties
    broken by plugin name). A model nobody claims keeps the labels of TAXONOMY.md's rule, no
    workload, and the reason nobody claimed it.
    """


# -- Hooks for both kinds --------------------------------------------------------------------


@hookspec
def hwaccel_template(backend: str, pipeline: str) -> TemplatePart | None:
    """Provide this plugin's half of a generated test file for (backend, pipeline).

    Called by ``hwaccel generate``. The pipeline plugin named ``pipeline`` answers with the
    test-module template and the slots it needs; the backend plugin named ``backend`` answers
    with source snippets for those slots. Every other plugin returns ``None``.

    :param backend: the backend id the file targets (``cpu``, ``cuda``, ...).
    :param pipeline: the pipeline id of the model (``text``, ``vision``, ...).
    :returns: a ``TemplatePart`` or ``None``.

    How results combine: all parts are collected and composed by the core; a pipeline part
    and a backend part must answer, and the backend must fill every slot the pipeline
    requires.
    """
